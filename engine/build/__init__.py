"""Dockerfile builds with dockerd's classic builder, as a parse -> evaluate pipeline.

1. Parse (builder.BuilderService.prepare): the request body is unpacked into a
   context directory (fs.py applies .dockerignore) and the Dockerfile is parsed
   (dockerfile.py) into stages of instructions. Every error here happens before
   any output, so it is a plain HTTP error.
2. Evaluate (job.py, one `Job` per build): only the target stage and the stages
   it names (FROM, COPY --from) run. Each instruction goes through `Job`'s
   dispatch table (builder.py: keyword -> handler in metadata.py, files.py or
   run.py); each step first probes the step cache (cache.py: parent image and
   step key -> image), and on a miss does its work - RUN in a real container
   (run.py), COPY/ADD/WORKDIR in an overlay (fs.py) - then commits an image
   whose parent is the previous step's. The build streams Docker's JSON
   messages (state.py) while it runs.
"""
