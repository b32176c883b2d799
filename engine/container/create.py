"""Create: a container's record, directories, name and network registration, validated as dockerd does."""
from __future__ import annotations

import dataclasses
import os
import secrets
import shutil

from engine.container import logconfig, naming, probes
from engine.container.attach import Attaching
from engine.container.record import ContainerID, ContainerRecord, GraphDriver, GraphDriverData
from engine.container.signals import parse_signal
from engine.errors import InvalidParameter, NotFound
from engine.runtime import oci, resources, security
from engine.runtime.spec import normalize_caps
from engine.timeutil import rfc3339_ns
from engine.types.container import ContainerConfig, ContainerCreateRequest, HostConfig
from engine.volume import mountspec
from engine.volume.mountspec import MountPoint


class Creating(Attaching):
    # ---- create -------------------------------------------------------
    def create(self, req: ContainerCreateRequest, name: str = "",
               intermediate: bool = False) -> tuple[ContainerID, list[str]]:
        """A new container and the warnings; an `intermediate` one (a build's RUN) is removed if a daemon
        restart finds it."""
        self.runtime.expect_start()  # first: a start usually follows within milliseconds (cgroupwarm.py)
        name = naming.validate(name) if name else ""
        body, host = req.config, req.host_config
        if not body.image:
            raise InvalidParameter("No image specified")
        image_id = self.images.resolve(body.image)
        icfg = self.images.run_config(image_id)
        probes.validate(body.healthcheck)
        self._validate_host_config(host)
        self._choose_runtime(host)
        net_plan = self.network.plan(req)
        warnings = resources.adapt_host_config(host, self.cfg.limit_controllers, self.cfg.cgroup_limits_reason)
        security.validate_host_config(host)
        config, argv = _merge_image_config(body, icfg)
        if not argv:
            raise InvalidParameter("no command specified")
        cid = ContainerID(secrets.token_hex(32))
        config.hostname = config.hostname or cid[:12]
        if config.working_dir and not config.working_dir.startswith("/"):
            raise InvalidParameter(f"the working directory '{config.working_dir}' is invalid, it needs to be an absolute path")
        if config.stop_signal:
            parse_signal(config.stop_signal)
        if len(config.hostname) > 255:
            raise InvalidParameter("invalid hostname: too long")
        cdir, rdir = self.dir(cid), self.run_dir(cid)
        log_spec = logconfig.spec(host.log_config, cdir)
        chain = self.images.top_chain(image_id)
        lowers = self.layers.lower_dirs(chain)
        record = ContainerRecord(
            id=cid, created=rfc3339_ns(), path=argv[0], args=argv[1:], image_id=image_id,
            resolv_conf_path=os.path.join(rdir, "resolv.conf"), hostname_path=os.path.join(rdir, "hostname"),
            hosts_path=os.path.join(rdir, "hosts"),
            log_path=log_spec.path if log_spec.driver == logconfig.JSON_FILE else "",
            name=name, host_config=host, config=config, chain=chain, intermediate=intermediate,
            driver=self.cfg.storage_driver, graph_driver=GraphDriver(name=self.cfg.storage_driver, data=GraphDriverData(
                lower_dir=":".join(self.layers.container_lowers(lowers)), upper_dir=os.path.join(cdir, "upper"),
                work_dir=os.path.join(cdir, "work"), merged_dir=os.path.join(cdir, "merged"))))
        inherited = self._inherited_mounts(host.volumes_from or [])
        self.dirs.make(cdir)
        try:
            # (volumes the claim creates commit on their own, durably)
            with self.volumes.claim(cid, host, list(config.volumes or {}), inherited, lowers) as points, \
                    self.meta.transaction(durable=not record.disposable):
                record.mount_points = points
                if not name:
                    record.name = name = naming.generate(self.store.name_taken)
                self.store.insert(record)
                self.network.register(cid, name, net_plan)
        except BaseException:
            shutil.rmtree(cdir, ignore_errors=True)
            raise
        self._event(record, "create")
        return cid, warnings

    def _inherited_mounts(self, volumes_from: list[str]) -> list[MountPoint]:
        """The mount points `--volumes-from` gives (read-only where asked), later sources winning."""
        out: dict[str, MountPoint] = {}
        for spec in volumes_from:
            ref, rw = mountspec.parse_volumes_from(spec)
            try:
                source = self.get(ref)
            except NotFound as e:
                raise InvalidParameter(e.message) from None
            for mp in source.mount_points:
                out[mp.destination] = dataclasses.replace(mp, rw=mp.rw and rw, copy_data=False)
        return list(out.values())

    def _choose_runtime(self, h: HostConfig) -> None:
        """The container's OCI runtime: the daemon's default unless it names one this daemon offers."""
        h.runtime = h.runtime or self.cfg.chosen_runtime
        self._check_runtime(h.runtime, "Unknown runtime specified")

    def _check_runtime(self, name: str, refusal: str) -> None:
        """400 (`refusal`, the name and why) unless this daemon offers OCI runtime `name`: checked at create,
        and again at start, as the daemon may have been restarted where it no longer does."""
        if name not in self.cfg.runtimes:
            why = self.cfg.why_unusable(name) if name in oci.NAMES else ""
            raise InvalidParameter(f"{refusal} {name}" + (f" ({why})" if why else ""))

    @staticmethod
    def _validate_host_config(h: HostConfig) -> None:
        """dockerd's checks of the fields create owns, filling in its defaults in place."""
        policy = h.restart_policy
        resources.check_restart_policy(policy.name or "no", policy.maximum_retry_count)
        if h.auto_remove and policy.name not in ("", "no"):
            raise InvalidParameter("can't create 'AutoRemove' container with restart policy")
        policy.name = policy.name or "no"
        for key, caps in (("CapAdd", h.cap_add), ("CapDrop", h.cap_drop)):
            try:
                normalize_caps(caps or [])
            except InvalidParameter as e:
                raise InvalidParameter(f"invalid {key}: {e.message}") from None
        h.network_mode = h.network_mode or "default"
        h.log_config = logconfig.validate(h.log_config)


def _merge_env(env: list[str] | None, image_env: list[str] | None) -> list[str] | None:
    """dockerd's Config.Env: the request's entries as given (a bare `K` too: it unsets K when the process
    starts), then the image's whose key the request does not name."""
    if not env:
        return image_env
    keys = {e.split("=", 1)[0] for e in env}
    return [*env, *(e for e in image_env or [] if e.split("=", 1)[0] not in keys)]


def _merge_image_config(body: ContainerConfig, image: ContainerConfig) -> tuple[ContainerConfig, list[str]]:
    """The container's Config (the request's, with the image's defaults where it gave none, as dockerd
    merges them) and the command line it runs."""
    entrypoint, cmd = body.entrypoint, body.cmd
    if entrypoint is not None and entrypoint != []:
        ep, args = entrypoint, cmd or []
    else:
        ep = [] if entrypoint == [] else (image.entrypoint or [])
        args = cmd if cmd else ([] if entrypoint is not None else (image.cmd or []))
    labels = dict(image.labels or {})
    labels.update(body.labels or {})
    config = dataclasses.replace(
        body,
        user=body.user or image.user,
        exposed_ports={**(image.exposed_ports or {}), **(body.exposed_ports or {})} or None,
        env=_merge_env(body.env, image.env),
        cmd=cmd if cmd is not None else (image.cmd if entrypoint is None else None),
        volumes={**(image.volumes or {}), **(body.volumes or {})} or None,
        working_dir=body.working_dir or image.working_dir,
        entrypoint=entrypoint if entrypoint is not None else (image.entrypoint or None),
        on_build=None, labels=labels,
        stop_signal=body.stop_signal or image.stop_signal,
        healthcheck=probes.merge(body.healthcheck, image.healthcheck))
    return config, [*ep, *args]
