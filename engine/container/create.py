"""Create: a container's record, directories, name and network registration, validated as dockerd does."""
from __future__ import annotations

import os
import secrets
import shutil
from typing import Any

from engine.container import logconfig, naming
from engine.container.attach import Attaching
from engine.container.signals import parse_signal
from engine.errors import InvalidParameter
from engine.runtime import resources, security
from engine.runtime.spec import merge_env, normalize_caps
from engine.timeutil import ZERO_TIME, rfc3339_ns


def _str_slice(value: str | list[str] | None) -> list[str] | None:
    """Docker's StrSlice fields (Cmd, Entrypoint, CapAdd) take one string for a one-item list."""
    return [value] if isinstance(value, str) else value


class Creating(Attaching):
    # ---- create -------------------------------------------------------
    def create(self, body: dict[str, Any], name: str = "", intermediate: bool = False) -> dict[str, Any]:
        """A new container; an `intermediate` one (a build's RUN) is removed if a daemon restart finds it."""
        name = naming.validate(name) if name else ""
        image_ref = body.get("Image") or ""
        if not image_ref:
            raise InvalidParameter("No image specified")
        image_id = self.images.resolve(image_ref)
        icfg = self.images.config(image_id).get("config") or {}
        host = self._validate_host_config(body.get("HostConfig") or {})
        net_plan = self.network.plan(body, host)
        warnings = resources.adapt_host_config(host, self.cfg.limit_controllers, self.cfg.cgroup_limits_reason)
        security.validate_host_config(host)
        entrypoint, cmd = _str_slice(body.get("Entrypoint")), _str_slice(body.get("Cmd"))
        if entrypoint is not None and entrypoint != []:
            ep, args = entrypoint, cmd or []
        else:
            ep = [] if entrypoint == [] else (icfg.get("Entrypoint") or [])
            args = cmd if cmd else ([] if entrypoint is not None else (icfg.get("Cmd") or []))
        argv = list(ep) + list(args)
        if not argv:
            raise InvalidParameter("no command specified")
        cid = secrets.token_hex(32)
        env = merge_env(icfg.get("Env"), body.get("Env") or [])
        labels = dict(icfg.get("Labels") or {})
        labels.update(body.get("Labels") or {})
        config = {
            "Hostname": body.get("Hostname") or cid[:12],
            "Domainname": body.get("Domainname") or "",
            "User": body.get("User") or icfg.get("User", ""),
            "AttachStdin": bool(body.get("AttachStdin")), "AttachStdout": bool(body.get("AttachStdout")),
            "AttachStderr": bool(body.get("AttachStderr")),
            "ExposedPorts": {**(icfg.get("ExposedPorts") or {}), **(body.get("ExposedPorts") or {})} or None,
            "Tty": bool(body.get("Tty")), "OpenStdin": bool(body.get("OpenStdin")),
            "StdinOnce": bool(body.get("StdinOnce")),
            "Env": env,
            "Cmd": cmd if cmd is not None else (icfg.get("Cmd") if entrypoint is None else None),
            "Image": image_ref,
            "Volumes": {**(icfg.get("Volumes") or {}), **(body.get("Volumes") or {})} or None,
            "WorkingDir": body.get("WorkingDir") or icfg.get("WorkingDir", ""),
            "Entrypoint": entrypoint if entrypoint is not None else (icfg.get("Entrypoint") or None),
            "OnBuild": None,
            "Labels": labels,
            "StopSignal": body.get("StopSignal") or icfg.get("StopSignal") or "",
            "StopTimeout": body.get("StopTimeout"),
        }
        if config["WorkingDir"] and not config["WorkingDir"].startswith("/"):
            raise InvalidParameter(f"the working directory '{config['WorkingDir']}' is invalid, it needs to be an absolute path")
        if config["StopSignal"]:
            parse_signal(config["StopSignal"])
        if len(config["Hostname"]) > 255:
            raise InvalidParameter("invalid hostname: too long")
        cdir = self.dir(cid)
        log_spec = logconfig.spec(host["LogConfig"], cdir)
        record: dict[str, Any] = {
            "Id": cid, "Created": rfc3339_ns(), "Path": argv[0], "Args": argv[1:],
            "State": {"Status": "created", "Running": False, "Paused": False, "Restarting": False,
                      "OOMKilled": False, "Dead": False, "Pid": 0, "ExitCode": 0, "Error": "",
                      "StartedAt": ZERO_TIME, "FinishedAt": ZERO_TIME},
            "Image": image_id,
            "ResolvConfPath": os.path.join(cdir, "resolv.conf"),
            "HostnamePath": os.path.join(cdir, "hostname"),
            "HostsPath": os.path.join(cdir, "hosts"),
            "LogPath": log_spec.path if log_spec.driver == logconfig.JSON_FILE else "",
            "Name": name, "RestartCount": 0, "Driver": "overlay2", "Platform": "linux",
            "MountLabel": "", "ProcessLabel": "", "AppArmorProfile": "", "ExecIDs": None,
            "HostConfig": host,
            "GraphDriver": {"Name": "overlay2", "Data": {
                "LowerDir": ":".join(self.layers.lower_dirs(self.images.top_chain(image_id))),
                "UpperDir": os.path.join(cdir, "upper"), "WorkDir": os.path.join(cdir, "work"),
                "MergedDir": os.path.join(cdir, "merged")}},
            "Mounts": [],
            "Config": config,
            "NetworkSettings": {"Bridge": "", "SandboxID": "", "Ports": {}, "SandboxKey": "",
                                "Networks": {}},
            "_chain": self.images.top_chain(image_id),
            "_manual_stop": False,
            "_intermediate": intermediate,
        }
        os.makedirs(cdir, mode=0o710)
        try:
            for sub in ("upper", "work", "merged"):
                os.mkdir(os.path.join(cdir, sub))
            with self.volumes.claim(record, self.layers.lower_dirs(record["_chain"])), \
                    self.meta.transaction():
                if not name:
                    record["Name"] = name = naming.generate(self.store.names())
                self.store.insert(record)
                self.network.register(cid, name, net_plan)
        except BaseException:
            shutil.rmtree(cdir, ignore_errors=True)
            raise
        self._event(record, "create")
        return {"Id": cid, "Warnings": warnings}

    @staticmethod
    def _validate_host_config(h: dict[str, Any]) -> dict[str, Any]:
        policy = h.get("RestartPolicy") or {}
        pname = policy.get("Name") or ""
        retries = policy.get("MaximumRetryCount") or 0
        resources.check_restart_policy(pname or "no", retries)
        if h.get("AutoRemove") and pname not in ("", "no"):
            raise InvalidParameter("can't create 'AutoRemove' container with restart policy")
        mode = h.get("NetworkMode") or "default"
        out = dict(h)
        for key in ("CapAdd", "CapDrop"):
            out[key] = _str_slice(h.get(key))
            try:
                normalize_caps(out[key] or [])
            except InvalidParameter as e:
                raise InvalidParameter(f"invalid {key}: {e.message}") from None
        out.update({"RestartPolicy": {"Name": pname or "no", "MaximumRetryCount": retries},
                    "NetworkMode": mode, "AutoRemove": bool(h.get("AutoRemove")),
                    "LogConfig": logconfig.validate(h.get("LogConfig")),
                    "Privileged": bool(h.get("Privileged")), "ReadonlyRootfs": bool(h.get("ReadonlyRootfs")),
                    "Init": h.get("Init")})
        return out
