"""The Engine API's records (moby's api/types): what requests carry and records hold, typed.

Below every service package: containers, networking, volumes and the runtime
all read these, and none of them imports another to get a type.
"""
