#!/usr/bin/env python3
"""Offline checks of deploy/: Kubernetes manifests, compose file, Dockerfiles,
systemd units and experiment files.

Kubernetes: every document parses, has apiVersion/kind/metadata.name of a known
kind, and the fields the project relies on are right (one coordinator replica,
Recreate, TLS on the gRPC port and gRPC probes on the plain-text health port,
workers with GPU limits dialling https with the coordinator's CA, the token as a
Secret, references between objects resolve). Dockerfiles: rules in the spirit
of hadolint (pinned base images, no `latest`, non-root USER, no ADD of URLs,
exec-form ENTRYPOINT, multi-stage, worker on PyTorch 2.11 with
LIBTORCH_USE_PYTORCH=1, coordinator without torch). systemd units: TLS on
the coordinator's, and the worker's dialling with the CA and a credential of
its own, not the shared token (as compose's workers enrol). With --coordinator and
--worker, every flag the files pass to the binaries must appear in their --help.

Usage: validate_manifests.py DEPLOY_DIR [--coordinator BIN --worker BIN]
Prints one line per problem and exits 1 when there is any.
"""
import argparse
import configparser
import functools
import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml

PROBLEMS = []


def problem(where, message):
    PROBLEMS.append(f"{where}: {message}")


KNOWN_KINDS = {
    ("v1", "Namespace"), ("v1", "Secret"), ("v1", "PersistentVolumeClaim"),
    ("v1", "Service"), ("v1", "ConfigMap"), ("apps/v1", "Deployment"),
    ("apps/v1", "StatefulSet"), ("batch/v1", "Job"),
}
GRPC_PORT = 50051


def image_pinned(image):
    """An image reference with an explicit tag (or digest) that is not `latest`."""
    if "@sha256:" in image:
        return True
    name = image.rsplit("/", 1)[-1]
    if ":" not in name:
        return False
    return name.rsplit(":", 1)[1] not in ("latest", "")


# ---------------------------------------------------------------- Kubernetes

def check_pod_spec(where, spec, pvcs, secrets, configmaps):
    containers = spec.get("containers") or []
    if not containers:
        problem(where, "pod spec has no containers")
    volumes = {v.get("name"): v for v in spec.get("volumes") or []}
    for name, vol in volumes.items():
        if "persistentVolumeClaim" in vol:
            claim = vol["persistentVolumeClaim"].get("claimName")
            if claim not in pvcs:
                problem(where, f"volume {name} claims unknown PVC {claim}")
        if "secret" in vol and vol["secret"].get("secretName") not in secrets:
            problem(where, f"volume {name} uses unknown Secret {vol['secret'].get('secretName')}")
        if "configMap" in vol and vol["configMap"].get("name") not in configmaps:
            problem(where, f"volume {name} uses unknown ConfigMap {vol['configMap'].get('name')}")
    sc = spec.get("securityContext") or {}
    if not sc.get("runAsNonRoot"):
        problem(where, "pod securityContext.runAsNonRoot is not true")
    for c in containers:
        cw = f"{where} container {c.get('name')}"
        if not c.get("name"):
            problem(where, "a container has no name")
        if not c.get("image"):
            problem(cw, "no image")
        elif ":" in c["image"].rsplit("/", 1)[-1] and not image_pinned(c["image"]):
            problem(cw, f"image {c['image']} uses `latest`")
        for m in c.get("volumeMounts") or []:
            if m.get("name") not in volumes:
                problem(cw, f"mounts unknown volume {m.get('name')}")
            if not str(m.get("mountPath", "")).startswith("/"):
                problem(cw, f"mountPath of {m.get('name')} is not absolute")
        for port in c.get("ports") or []:
            if not isinstance(port.get("containerPort"), int):
                problem(cw, "a port has no integer containerPort")
    return containers


def args_value(args, flag):
    """The value of --flag in an args list (`--flag=v` or `--flag v`)."""
    for i, a in enumerate(args):
        if a == flag and i + 1 < len(args):
            return args[i + 1]
        if a.startswith(flag + "="):
            return a.split("=", 1)[1]
    return None


def check_k8s(k8s_dir):
    kust_path = k8s_dir / "kustomization.yaml"
    kust = yaml.safe_load(kust_path.read_text())
    docs = []
    for res in kust.get("resources") or []:
        path = k8s_dir / res
        if not path.is_file():
            problem(kust_path, f"resource {res} does not exist")
            continue
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                docs.append((path.name, doc))
    configmaps = set()
    for gen in kust.get("configMapGenerator") or []:
        configmaps.add(gen.get("name"))
        for f in gen.get("files") or []:
            if not (k8s_dir / f.split("=", 1)[-1]).is_file():
                problem(kust_path, f"configMapGenerator file {f} does not exist")
            elif f.endswith(".toml"):
                check_experiment(k8s_dir / f.split("=", 1)[-1])
    kust_images = {i.get("name"): i for i in kust.get("images") or []}
    for name, img in kust_images.items():
        if img.get("newTag") in (None, "latest"):
            problem(kust_path, f"image {name} has no pinned newTag")

    by_kind = {}
    for fname, doc in docs:
        api, kind = doc.get("apiVersion"), doc.get("kind")
        name = (doc.get("metadata") or {}).get("name")
        if not api or not kind or not name:
            problem(fname, "document lacks apiVersion, kind or metadata.name")
            continue
        if (api, kind) not in KNOWN_KINDS:
            problem(fname, f"unexpected {api} {kind}")
        by_kind.setdefault(kind, {})[name] = (fname, doc)
    pvcs = set(by_kind.get("PersistentVolumeClaim", {}))
    secrets = set(by_kind.get("Secret", {}))
    configmaps |= set(by_kind.get("ConfigMap", {}))

    for name, (fname, doc) in by_kind.get("PersistentVolumeClaim", {}).items():
        spec = doc.get("spec") or {}
        if not spec.get("accessModes") or not ((spec.get("resources") or {}).get("requests") or {}).get("storage"):
            problem(fname, f"PVC {name} needs accessModes and resources.requests.storage")
    for name, (fname, doc) in by_kind.get("Secret", {}).items():
        data = {**(doc.get("data") or {}), **(doc.get("stringData") or {})}
        if doc.get("type") == "kubernetes.io/tls":
            if not {"tls.crt", "tls.key"} <= set(data):
                problem(fname, f"TLS Secret {name} needs tls.crt and tls.key")
        elif "token" not in data:
            problem(fname, f"Secret {name} has no `token` key")

    deployments = by_kind.get("Deployment", {})
    coord = [d for n, d in deployments.items() if "coordinator" in n]
    if len(coord) != 1:
        problem("k8s", "expected exactly one coordinator Deployment")
    coord_labels = {}
    for fname, doc in coord:
        spec = doc.get("spec") or {}
        if spec.get("replicas") != 1:
            problem(fname, "the coordinator must have replicas: 1 (it owns the SQLite state)")
        if (spec.get("strategy") or {}).get("type") != "Recreate":
            problem(fname, "the coordinator needs strategy Recreate (one writer on the state volume)")
        template = spec.get("template") or {}
        coord_labels = (template.get("metadata") or {}).get("labels") or {}
        selector = (spec.get("selector") or {}).get("matchLabels") or {}
        if not selector or any(coord_labels.get(k) != v for k, v in selector.items()):
            problem(fname, "selector.matchLabels do not match the pod template's labels")
        pod = template.get("spec") or {}
        for c in check_pod_spec(fname, pod, pvcs, secrets, configmaps):
            args = [str(a) for a in c.get("args") or []]
            if not args or args[0] != "serve":
                problem(fname, "coordinator container does not run `serve`")
            listen = args_value(args, "--listen") or ""
            if not listen.endswith(f":{GRPC_PORT}") or listen.startswith("127."):
                problem(fname, f"--listen {listen!r} is not 0.0.0.0:{GRPC_PORT}")
            if not args_value(args, "--token-file"):
                problem(fname, "--token-file is required beyond loopback")
            if not args_value(args, "--admin-token-file"):
                problem(fname, "--admin-token-file is required beyond loopback (admin is not a worker)")
            if not (args_value(args, "--tls-cert") and args_value(args, "--tls-key")):
                problem(fname, "gRPC beyond loopback without TLS (--tls-cert/--tls-key)")
            health = args_value(args, "--health-listen") or ""
            health_port = int(health.rsplit(":", 1)[1]) if re.fullmatch(r".+:\d+", health) else None
            state = args_value(args, "--state") or ""
            mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts") or []}
            state_vol = next((n for p, n in mounts.items() if state.startswith(p.rstrip("/") + "/")), None)
            vols = {v["name"]: v for v in pod.get("volumes") or []}
            if state_vol is None or "persistentVolumeClaim" not in vols.get(state_vol, {}):
                problem(fname, f"--state {state} is not on a PersistentVolumeClaim")
            ports = {p.get("name"): p.get("containerPort") for p in c.get("ports") or []}
            if ports.get("grpc") != GRPC_PORT:
                problem(fname, f"container port `grpc` is not {GRPC_PORT}")
            # The kubelet's grpc probes cannot speak TLS: they go to the
            # plain-text health listener.
            for probe in ("readinessProbe", "livenessProbe"):
                p = c.get(probe)
                if not p or "grpc" not in p:
                    problem(fname, f"{probe} is not a grpc probe")
                elif health_port is None or p["grpc"].get("port") != health_port:
                    problem(fname, f"{probe} probes port {p['grpc'].get('port')}, not the --health-listen port {health_port}")

    services = by_kind.get("Service", {})
    coord_svc = [(n, f, d) for n, (f, d) in services.items() if "coordinator" in n]
    if len(coord_svc) != 1:
        problem("k8s", "expected one coordinator Service")
    svc_name = coord_svc[0][0] if coord_svc else None
    for name, fname, doc in coord_svc:
        spec = doc.get("spec") or {}
        sel = spec.get("selector") or {}
        if not sel or any(coord_labels.get(k) != v for k, v in sel.items()):
            problem(fname, "Service selector does not match the coordinator's pod labels")
        if GRPC_PORT not in [p.get("port") for p in spec.get("ports") or []]:
            problem(fname, f"Service does not expose port {GRPC_PORT}")

    workers = [(n, f, d) for kind in ("Job", "StatefulSet")
               for n, (f, d) in by_kind.get(kind, {}).items() if "worker" in n]
    if not workers:
        problem("k8s", "no worker Job or StatefulSet")
    for name, fname, doc in workers:
        spec = doc.get("spec") or {}
        if doc["kind"] == "Job":
            if spec.get("completionMode") != "Indexed":
                problem(fname, "worker Job is not Indexed")
            if not isinstance(spec.get("completions"), int) or not isinstance(spec.get("parallelism"), int):
                problem(fname, "worker Job needs integer completions and parallelism")
        pod = (spec.get("template") or {}).get("spec") or {}
        if doc["kind"] == "Job" and pod.get("restartPolicy") not in ("OnFailure", "Never"):
            problem(fname, "a Job's restartPolicy must be OnFailure or Never")
        if int(pod.get("terminationGracePeriodSeconds") or 30) < 300:
            problem(fname, "terminationGracePeriodSeconds < 300 leaves no time to drain")
        for c in check_pod_spec(fname, pod, pvcs, secrets, configmaps):
            args = [str(a) for a in c.get("args") or []]
            if not args or args[0] != "join":
                problem(fname, "worker container does not run `join`")
            url = args_value(args, "--coordinator") or ""
            if svc_name and not re.fullmatch(rf"https://{re.escape(svc_name)}(\.[a-z0-9.-]+)?:{GRPC_PORT}", url):
                problem(fname, f"--coordinator {url!r} is not https to the coordinator Service on port {GRPC_PORT}")
            if not args_value(args, "--tls-ca"):
                problem(fname, "worker has no --tls-ca (the coordinator's certificate)")
            # A credential of its own: enrolled with the enrolment token
            # (never the shared worker token).
            if args_value(args, "--token-file"):
                problem(fname, "worker carries a --token-file (the shared token); enrol instead")
            if not (args_value(args, "--enrolment-token-file") and args_value(args, "--credential-file")):
                problem(fname, "worker has no --enrolment-token-file/--credential-file")
            limits = (c.get("resources") or {}).get("limits") or {}
            gpus = limits.get("nvidia.com/gpu")
            if not isinstance(gpus, int) or gpus < 1:
                problem(fname, "worker has no nvidia.com/gpu limit")
    return docs


# ---------------------------------------------------------------- experiments

EXPERIMENT_KEYS = {
    None: {"name", "data", "protocol", "simulation", "training"},
    "data": {"root"},
    "protocol": {"kind", "folds", "seeds", "variants", "val_fraction", "max_attempts"},
    "simulation": {"steps", "dt_ms", "a", "vth", "tau"},
    "training": {"batch", "test_batch", "epochs", "optimizer", "lr", "momentum", "lr_decay_every",
                 "lr_decay", "bin_mode", "random_crop", "test_steps", "shuffle", "checkpoint_every",
                 "deterministic"},
}


def check_experiment(path):
    try:
        exp = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        problem(path, f"TOML does not parse: {e}")
        return
    for key in set(exp) - EXPERIMENT_KEYS[None]:
        problem(path, f"unknown key {key}")
    for section in ("data", "protocol", "simulation", "training"):
        for key in set(exp.get(section) or {}) - EXPERIMENT_KEYS[section]:
            problem(path, f"unknown key {section}.{key}")
    if "root" not in (exp.get("data") or {}):
        problem(path, "no [data] root")
    variants = (exp.get("protocol") or {}).get("variants", ["whole", "reduced"])
    if sorted(variants) != ["reduced", "whole"]:
        problem(path, f"variants {variants}: both whole and reduced expected")


# ---------------------------------------------------------------- compose

def check_compose(path):
    doc = yaml.safe_load(path.read_text())
    services = doc.get("services") or {}
    volumes = set(doc.get("volumes") or {})
    secrets = doc.get("secrets") or {}
    for need in ("coordinator", "worker"):
        if need not in services:
            problem(path, f"no `{need}` service")
    for name, svc in services.items():
        where = f"{path.name} service {name}"
        image = svc.get("image")
        if not image and not svc.get("build"):
            problem(where, "neither image nor build")
        if image and not image_pinned(image):
            problem(where, f"image {image} is not pinned to a tag")
        build = svc.get("build")
        if isinstance(build, dict):
            dockerfile = (path.parent / build.get("context", ".")) / build.get("dockerfile", "Dockerfile")
            if not dockerfile.is_file():
                problem(where, f"dockerfile {dockerfile} does not exist")
        for v in svc.get("volumes") or []:
            src = str(v).split(":", 1)[0]
            if src.startswith((".", "/")):
                if not (path.parent / src).exists():
                    problem(where, f"bind-mounts missing {src}")
                elif src.endswith(".toml"):
                    check_experiment(path.parent / src)
            elif src not in volumes:
                problem(where, f"uses undeclared volume {src}")
        for s in svc.get("secrets") or []:
            if (s if isinstance(s, str) else s.get("source")) not in secrets:
                problem(where, f"uses undeclared secret {s}")
        for dep, cond in (svc.get("depends_on") or {}).items():
            if dep not in services:
                problem(where, f"depends on unknown service {dep}")
    coord = services.get("coordinator") or {}
    coord_cmd = [str(a) for a in coord.get("command") or []]
    if "--tls-cert" not in coord_cmd or "--tls-key" not in coord_cmd:
        problem(path, "the coordinator serves gRPC beyond loopback without TLS (--tls-cert/--tls-key)")
    for name, svc in services.items():
        cmd = [str(a) for a in svc.get("command") or []]
        if cmd[:1] == ["join"]:
            if not (args_value(cmd, "--coordinator") or "").startswith("https://"):
                problem(path, f"service {name} does not dial the coordinator over https")
            if not args_value(cmd, "--tls-ca"):
                problem(path, f"service {name} has no --tls-ca")
            if args_value(cmd, "--token-file") or not args_value(cmd, "--enrolment-token-file"):
                problem(path, f"service {name} does not enrol for a credential of its own")
    if "healthcheck" not in coord:
        problem(path, "the coordinator has no healthcheck")
    worker = services.get("worker") or {}
    if ((worker.get("depends_on") or {}).get("coordinator") or {}).get("condition") != "service_healthy":
        problem(path, "workers should wait for a healthy coordinator")
    gpu = [n for n, s in services.items()
           if any("gpu" in (d.get("capabilities") or [])
                  for d in (((s.get("deploy") or {}).get("resources") or {}).get("reservations") or {}).get("devices") or [])]
    if not gpu:
        problem(path, "no service reserves GPUs")
    return services


# ---------------------------------------------------------------- Dockerfiles

def dockerfile_instructions(path):
    """(line number, INSTRUCTION, arguments) with continuations joined, comments dropped."""
    out, buf, start = [], "", 0
    for n, line in enumerate(path.read_text().splitlines(), 1):
        stripped = line.strip()
        if not buf and (not stripped or stripped.startswith("#")):
            continue
        if buf and stripped.startswith("#"):
            continue
        if not buf:
            start = n
        if stripped.endswith("\\"):
            buf += stripped[:-1] + " "
            continue
        buf += stripped
        instr, _, rest = buf.partition(" ")
        out.append((start, instr.upper(), rest.strip()))
        buf = ""
    return out


def check_dockerfile(path, role):
    ins = dockerfile_instructions(path)
    args = {}
    stages = []
    user = None
    for n, instr, rest in ins:
        where = f"{path.name}:{n}"
        if instr == "ARG":
            name, _, default = rest.partition("=")
            args[name.strip()] = default.strip().strip('"')
        elif instr == "FROM":
            parts = rest.split()
            image = re.sub(r"\$\{?(\w+)\}?", lambda m: args.get(m.group(1), m.group(0)), parts[0])
            alias = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            if image in [s[1] for s in stages]:
                pass
            elif not image_pinned(image) and image not in [s[1] for s in stages if s[1]]:
                problem(where, f"base image {image} is not pinned to a tag (or uses latest)")
            stages.append((image, alias))
            user = None
        elif instr == "USER":
            user = rest.split(":")[0]
        elif instr == "ADD" and re.search(r"https?://", rest):
            problem(where, "ADD of a URL (use curl in a RUN, with checks)")
        elif instr == "COPY":
            m = re.search(r"--from=(\S+)", rest)
            if m and m.group(1) not in [s[1] for s in stages] and not image_pinned(m.group(1)):
                problem(where, f"COPY --from={m.group(1)}: unknown stage")
        elif instr == "RUN":
            if "apt-get install" in rest:
                if "--no-install-recommends" not in rest:
                    problem(where, "apt-get install without --no-install-recommends")
                if "rm -rf /var/lib/apt/lists" not in rest:
                    problem(where, "apt lists not removed in the same RUN")
            if re.search(r"(^|\s)sudo\s", rest):
                problem(where, "sudo in RUN")
            if re.search(r"cd\s+\S+\s*&&", rest):
                problem(where, "cd in RUN (use WORKDIR)")
        elif instr in ("ENTRYPOINT", "CMD"):
            if not rest.startswith("["):
                problem(where, f"{instr} in shell form (use the exec form)")
    if len(stages) < 2:
        problem(path.name, "not a multi-stage build")
    if user in (None, "root", "0"):
        problem(path.name, "the final stage runs as root (add USER with a non-root uid)")
    text = path.read_text()
    final = stages[-1][0] if stages else ""
    if "|" in " ".join(r for _, i, r in ins if i == "RUN") and "pipefail" not in text:
        problem(path.name, "RUN with a pipe but no SHELL [..., -o pipefail]")
    if role == "coordinator":
        if "torch" in final or "cuda" in final:
            problem(path.name, f"coordinator image is based on {final}; it must not carry libtorch")
        if "spikecv-worker" in text.replace("COPY worker worker", ""):
            problem(path.name, "coordinator image builds the worker")
    if role == "worker":
        if not re.match(r"pytorch/pytorch:2\.11\.\d+-cuda[\d.]+-cudnn\d+-runtime$", final):
            problem(path.name, f"worker's final stage {final} is not an official PyTorch 2.11 CUDA runtime image")
        if "LIBTORCH_USE_PYTORCH=1" not in text:
            problem(path.name, "worker is not built against the image's torch (LIBTORCH_USE_PYTORCH=1)")
    return ins


# ---------------------------------------------------------------- systemd

def check_unit_door(d, coord_exec, worker_exec):
    """TLS on the coordinator's unit; the worker's dials with the CA and a
    credential of its own (a LoadCredential that is not the shared token)."""
    if not ("--tls-cert" in coord_exec and "--tls-key" in coord_exec):
        problem("spikecv-coordinator.service", "the coordinator serves gRPC without TLS (--tls-cert/--tls-key)")
    if "--tls-ca" not in worker_exec:
        problem("spikecv-worker.service", "worker has no --tls-ca (the coordinator's certificate)")
    text = (d / "spikecv-worker.service").read_text()
    m = re.search(r"--token-file\s+%d/(\S+)", worker_exec)
    cred = m and re.search(rf"^LoadCredential={re.escape(m.group(1))}:(\S+)", text, re.M)
    if not cred or Path(cred.group(1)).name in ("token", "admin-token"):
        problem("spikecv-worker.service",
                "worker does not carry a credential of its own (--token-file from the shared token)")


def check_unit(path, min_stop_seconds):
    text = path.read_text()
    cp = configparser.ConfigParser(strict=False, interpolation=None, comment_prefixes=("#", ";"))
    cp.optionxform = str
    cp.read_string(re.sub(r"\\\n\s*", " ", text))
    for section, key in (("Unit", "Description"), ("Service", "ExecStart"), ("Install", "WantedBy")):
        if not cp.has_option(section, key):
            problem(path.name, f"[{section}] {key} missing")
    svc = cp["Service"] if cp.has_section("Service") else {}
    if svc.get("KillSignal") != "SIGTERM":
        problem(path.name, "KillSignal is not SIGTERM (the drain signal)")
    stop = svc.get("TimeoutStopSec", "90")
    m = re.fullmatch(r"(\d+)(min|s)?", stop)
    seconds = int(m.group(1)) * (60 if m and m.group(2) == "min" else 1) if m else 0
    if seconds < min_stop_seconds:
        problem(path.name, f"TimeoutStopSec={stop} is shorter than {min_stop_seconds} s")
    if svc.get("User") in (None, "root") and svc.get("DynamicUser") != "yes":
        problem(path.name, "runs as root (set User= or DynamicUser=yes)")
    return svc.get("ExecStart", "")


# ---------------------------------------------------------------- CLI flags

@functools.lru_cache(maxsize=None)
def help_flags(binary, sub):
    out = subprocess.run([binary, *sub, "--help"], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        problem(binary, f"`{' '.join(sub)} --help` failed: {out.stderr.strip()[:200]}")
    return set(re.findall(r"--[a-z][a-z0-9-]*", out.stdout))


def check_flags(binary, argv, where):
    """argv starts with the subcommand(s): every --flag must be in their --help."""
    sub = []
    for a in argv:
        if a.startswith("-"):
            break
        sub.append(a)
        if len(sub) == 2 or sub[0] in ("serve", "join", "report", "plan", "submit", "status"):
            break
    known = help_flags(binary, tuple(sub))
    for a in argv[len(sub):]:
        if a.startswith("--"):
            flag = a.split("=", 1)[0]
            if flag not in known:
                problem(where, f"`{Path(binary).name} {' '.join(sub)}` has no flag {flag}")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("deploy_dir", type=Path)
    ap.add_argument("--coordinator")
    ap.add_argument("--worker")
    opts = ap.parse_args()
    d = opts.deploy_dir
    docs = check_k8s(d / "k8s")
    services = check_compose(d / "compose" / "compose.yaml")
    coord_ins = check_dockerfile(d / "docker" / "Dockerfile.coordinator", "coordinator")
    worker_ins = check_dockerfile(d / "docker" / "Dockerfile.worker", "worker")
    coord_exec = check_unit(d / "systemd" / "spikecv-coordinator.service", 30)
    worker_exec = check_unit(d / "systemd" / "spikecv-worker.service", 600)
    check_unit_door(d / "systemd", coord_exec, worker_exec)

    if opts.coordinator and opts.worker:
        bins = {"coordinator": opts.coordinator, "worker": opts.worker}
        for fname, doc in docs:
            for kind_spec in ((doc.get("spec") or {}).get("template") or {},):
                for c in (kind_spec.get("spec") or {}).get("containers") or []:
                    role = "coordinator" if "coordinator" in c.get("image", "") else "worker"
                    check_flags(bins[role], [str(a) for a in c.get("args") or []], f"{fname} {c['name']}")
        for name, svc in services.items():
            cmd = svc.get("command")
            image = svc.get("image", "")
            if isinstance(cmd, list) and svc.get("entrypoint") is None:
                role = "coordinator" if "coordinator" in image else "worker"
                check_flags(bins[role], cmd, f"compose {name}")
        for role, ins in (("coordinator", coord_ins), ("worker", worker_ins)):
            for n, instr, rest in ins:
                if instr == "CMD":
                    check_flags(bins[role], json.loads(rest), f"Dockerfile.{role}:{n}")
        for role, line in (("coordinator", coord_exec), ("worker", worker_exec)):
            argv = line.split()[1:]
            check_flags(bins[role], argv, f"spikecv-{role}.service")

    for p in PROBLEMS:
        print(p)
    if PROBLEMS:
        print(f"{len(PROBLEMS)} problem(s) in deploy/", file=sys.stderr)
        sys.exit(1)
    print("deploy manifests: k8s, compose, Dockerfiles, systemd units and experiments check out")


if __name__ == "__main__":
    main()
