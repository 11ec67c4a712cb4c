"""cluster/ stays true to the code: every YAML parses, every `rlvr train` line in it names real config keys
with values GRPOConfig accepts, every `rlvr sandbox serve` / `ray start` / sandbox_urls.py flag exists,
and every shell script (and shell snippet inside the YAML) passes `bash -n`."""

from __future__ import annotations

import importlib.util
import re
import shlex
import subprocess
from pathlib import Path

import pytest
import yaml

from rlvr.config import load_config
from rlvr.grpo.config import GRPOConfig

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = ROOT / "cluster"
YAMLS = {
    "ray-cluster.yaml",
    "kuberay/rayjob.yaml",
    "kuberay/sandbox.yaml",
    "sandbox/compose.yaml",
}
SHELLS = {"slurm/grpo.sbatch", "ray-train.sh", "sandbox/replicas.sh"}
# files that must hold at least one `rlvr train` command line
TRAIN_IN = {"slurm/grpo.sbatch", "ray-train.sh", "kuberay/rayjob.yaml", "README.md"}
# values that a script only knows at run time, replaced by a typical one for validation
RUNTIME_VALUES = {
    "trainer.ray_address": "10.0.0.1:6379",
    "reward.sandbox_urls": "[http://node-0:8080,http://node-0:8081]",
}
PUNCT = set(";&|()")


def _load_module(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


sandbox_urls = _load_module(CLUSTER / "sandbox_urls.py", "cluster_sandbox_urls")


def _strings(obj) -> list[str]:
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [s for v in obj.values() for s in _strings(v)]
    if isinstance(obj, list):
        return [s for v in obj for s in _strings(v)]
    return []


def _yaml_docs(rel: str) -> list[dict]:
    return [d for d in yaml.safe_load_all((CLUSTER / rel).read_text()) if d is not None]


def _readme_blocks() -> list[str]:
    return re.findall(r"```bash\n(.*?)```", (CLUSTER / "README.md").read_text(), re.S)


def _text(rel: str) -> str:
    """What a file runs: YAML string values, README bash blocks, or the script; continuations joined."""
    if rel.endswith(".yaml"):
        text = "\n".join(s for d in _yaml_docs(rel) for s in _strings(d))
    elif rel == "README.md":
        text = "\n".join(_readme_blocks())
    else:
        text = (CLUSTER / rel).read_text()
    return re.sub(r"\\\n\s*", " ", text)


def _commands(text: str, prefix: str) -> list[list[str]]:
    """Token lists of every command line that starts with ``prefix`` (up to ; && | or a parenthesis)."""
    out = []
    for line in text.splitlines():
        i = line.find(prefix)
        if i < 0 or "#" in line[:i]:  # absent, or inside a comment
            continue
        lex = shlex.shlex(line[i:], posix=True, punctuation_chars=True)
        lex.whitespace_split = True
        tokens = []
        for tok in lex:
            if set(tok) <= PUNCT:
                break
            tokens.append(tok)
        out.append(tokens)
    return out


ALL_FILES = sorted(YAMLS | SHELLS | {"README.md"})


def test_the_expected_files_exist_and_nothing_is_unchecked():
    found = {p.relative_to(CLUSTER).as_posix() for p in CLUSTER.rglob("*") if p.is_file()}
    assert YAMLS | SHELLS <= found
    assert {f for f in found if f.endswith((".yaml", ".yml"))} == YAMLS
    assert {f for f in found if f.endswith((".sh", ".sbatch"))} == SHELLS


@pytest.mark.parametrize("rel", sorted(YAMLS))
def test_yaml_parses_to_mappings(rel):
    docs = _yaml_docs(rel)
    assert docs and all(isinstance(d, dict) for d in docs)


def _train_configs(rel: str) -> list[GRPOConfig]:
    text = _text(rel)
    raw = text if rel.endswith((".sh", ".sbatch")) else ""
    cfgs = []
    for tokens in _commands(text, "rlvr train"):
        assert tokens[:2] == ["rlvr", "train"]
        config, overrides, rest = None, [], iter(tokens[2:])
        for tok in rest:
            if tok in ("-c", "--config"):
                config = next(rest)
            elif tok in ("$@", "$*", "--check"):
                continue
            elif "=" in tok:
                key, _, value = tok.partition("=")
                if "$" in value:
                    assert key in RUNTIME_VALUES, f"{rel}: {key} takes a run-time value; add a typical one"
                    value = RUNTIME_VALUES[key]
                overrides.append(f"{key}={value}")
            else:
                raise AssertionError(f"{rel}: unexpected argument {tok!r} in {' '.join(tokens)}")
        assert config is not None, f"{rel}: `rlvr train` without -c"
        if config.startswith("$"):  # CONFIG=${CONFIG:-default} in the same script
            name = config.strip("${}")
            config = re.search(rf"{name}=\$\{{{name}:-([^}}]+)\}}", raw).group(1)
        assert (ROOT / config).is_file(), f"{rel}: config {config} does not exist"
        cfgs.append(load_config(GRPOConfig, ROOT / config, overrides))
    return cfgs


@pytest.mark.parametrize("rel", sorted(TRAIN_IN))
def test_train_command_lines_name_real_keys_with_valid_values(rel):
    cfgs = _train_configs(rel)
    assert cfgs, f"{rel} has no `rlvr train` line"
    for cfg in cfgs:
        # every cluster job connects to a running cluster and to remote sandbox replicas
        address = cfg.trainer.ray_address
        assert address == "auto" or re.fullmatch(r"[\w.-]+:\d+", address), address
        assert cfg.reward.sandbox_urls and all(u.startswith("http://") for u in cfg.reward.sandbox_urls)


def test_kuberay_entrypoint_reaches_the_sandbox_service_by_name():
    (cfg,) = _train_configs("kuberay/rayjob.yaml")
    (deployment, service, _) = _yaml_docs("kuberay/sandbox.yaml")
    port = service["spec"]["ports"][0]["port"]
    assert cfg.reward.sandbox_urls == [f"http://{service['metadata']['name']}:{port}"]


def _click_options(command) -> set[str]:
    return {opt for p in command.params for opt in p.opts}


@pytest.mark.parametrize("rel", ALL_FILES)
def test_sandbox_serve_and_ray_start_flags_exist(rel):
    import rlvr.sandbox.cli
    import typer
    from ray.scripts.scripts import start as ray_start

    group = typer.main.get_command(rlvr.sandbox.cli.app)
    serve = _click_options(group.commands["serve"])
    urls_cli = _click_options(typer.main.get_command(sandbox_urls.app))
    text = _text(rel)
    for prefix, known in (
        ("rlvr sandbox serve", serve),
        ("ray start", _click_options(ray_start)),
        ("sandbox_urls.py", urls_cli),
    ):
        for tokens in _commands(text, prefix):
            flags = {t.split("=", 1)[0] for t in tokens if t.startswith("--")}
            assert flags <= known, f"{rel}: `{prefix}` has unknown flags {sorted(flags - known)}"
    for tokens in _commands(text, "rlvr sandbox "):
        assert tokens[2] in group.commands, f"{rel}: no command `rlvr sandbox {tokens[2]}`"


def _bash_n(script: str, what: str) -> None:
    res = subprocess.run(["bash", "-n"], input=script, capture_output=True, text=True)
    assert res.returncode == 0, f"{what}: {res.stderr}"


@pytest.mark.parametrize("rel", sorted(SHELLS))
def test_shell_scripts_pass_bash_n(rel):
    _bash_n((CLUSTER / rel).read_text(), rel)


def test_shell_snippets_inside_yaml_and_readme_pass_bash_n():
    launcher = _yaml_docs("ray-cluster.yaml")[0]
    snippets = [
        *launcher["setup_commands"],
        *launcher["head_setup_commands"],
        *launcher["head_start_ray_commands"],
        *launcher["worker_start_ray_commands"],
        *launcher["available_node_types"]["sandbox_cpu"]["worker_setup_commands"],
        _yaml_docs("kuberay/rayjob.yaml")[0]["spec"]["entrypoint"],
        *_yaml_docs("kuberay/sandbox.yaml")[0]["spec"]["template"]["spec"]["containers"][0]["args"],
        *_readme_blocks(),
    ]
    for i, s in enumerate(snippets):
        _bash_n(s, f"snippet {i}: {s[:80]!r}")


def test_launcher_config_passes_rays_validator_and_every_node_type_gets_the_venv():
    import copy

    from ray.autoscaler._private.util import prepare_config, validate_config

    cfg = prepare_config(copy.deepcopy(_yaml_docs("ray-cluster.yaml")[0]))  # Ray's defaults filled in
    validate_config(cfg)  # Ray's JSON schema
    venv = [c for c in cfg["setup_commands"] if ".venv" in c]
    assert len(venv) == 2  # create .venv, pip install the project
    for name, node_type in cfg["available_node_types"].items():
        # what the autoscaler runs on a node of this type: its own list when it has one, else the
        # global setup_commands + worker_setup_commands (prepare_config merged those)
        if name == cfg["head_node_type"]:
            commands = cfg["head_setup_commands"]
        else:
            commands = node_type.get("worker_setup_commands", cfg["worker_setup_commands"])
        assert commands[: len(cfg["setup_commands"])] == cfg["setup_commands"], name
        image = node_type["node_config"]["ImageId"]
        assert image.startswith("resolve:ssm:/aws/service/") and "22.04" in image, (name, image)


def test_launcher_node_types_and_sandbox_marker():
    cfg = _yaml_docs("ray-cluster.yaml")[0]
    types = cfg["available_node_types"]
    assert cfg["head_node_type"] in types
    assert types["sandbox_cpu"]["resources"] == {"CPU": 0, "sandbox": 1}
    assert "--ray-resource sandbox" in (CLUSTER / "ray-train.sh").read_text()


def test_compose_replicas_publish_the_ports_sandbox_urls_expects():
    (compose,) = _yaml_docs("sandbox/compose.yaml")
    services = compose["services"]
    published = [services[f"sandbox-{i}"]["ports"] for i in range(len(services))]
    assert published == [[f"{8080 + i}:8080"] for i in range(len(services))]
    urls = sandbox_urls.sandbox_urls(["cpu-host"], len(services), 8080)
    assert urls == [f"http://cpu-host:{8080 + i}" for i in range(len(services))]
    assert all(s["volumes"] == ["/var/run/docker.sock:/var/run/docker.sock"] for s in services.values())


def test_kuberay_service_selects_the_deployment_and_policy_admits_the_rayjob():
    deployment, service, policy = _yaml_docs("kuberay/sandbox.yaml")
    assert [deployment["kind"], service["kind"], policy["kind"]] == ["Deployment", "Service", "NetworkPolicy"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"] == pod_labels == policy["spec"]["podSelector"]["matchLabels"]
    port_names = {p["name"] for p in deployment["spec"]["template"]["spec"]["containers"][0]["ports"]}
    assert service["spec"]["ports"][0]["targetPort"] in port_names
    job = _yaml_docs("kuberay/rayjob.yaml")[0]
    ray_pods = [job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]] + [
        g["template"] for g in job["spec"]["rayClusterSpec"]["workerGroupSpecs"]
    ]
    admitted = policy["spec"]["ingress"][0]["from"][0]["podSelector"]["matchLabels"]
    assert all(admitted.items() <= p["metadata"]["labels"].items() for p in ray_pods)


# ------------------------------------------------------------------ cluster/sandbox_urls.py


def test_sandbox_urls_host_major_ports_and_flow_list_parses_back():
    urls = sandbox_urls.sandbox_urls(["a", " b "], 2, 9000)
    assert urls == ["http://a:9000", "http://a:9001", "http://b:9000", "http://b:9001"]
    value = sandbox_urls.flow_list(urls)
    assert value == "[http://a:9000,http://a:9001,http://b:9000,http://b:9001]"
    cfg = load_config(GRPOConfig, None, [f"reward.sandbox_urls={value}"])
    assert cfg.reward.sandbox_urls == urls


@pytest.mark.parametrize(("hosts", "replicas", "msg"), [([], 1, "no sandbox hosts"), (["a"], 0, "replicas")])
def test_sandbox_urls_rejects_bad_input(hosts, replicas, msg):
    with pytest.raises(ValueError, match=msg):
        sandbox_urls.sandbox_urls(hosts, replicas, 8080)


def test_sandbox_urls_cli():
    from typer.testing import CliRunner

    runner = CliRunner()
    ok = runner.invoke(sandbox_urls.app, ["--hosts", "n1,n2", "--replicas", "2"])
    assert ok.exit_code == 0 and ok.stdout == "[http://n1:8080,http://n1:8081,http://n2:8080,http://n2:8081]\n"
    neither = runner.invoke(sandbox_urls.app, [])
    both = runner.invoke(sandbox_urls.app, ["--hosts", "n1", "--ray-resource", "sandbox"])
    empty = runner.invoke(sandbox_urls.app, ["--hosts", ","])
    assert (neither.exit_code, both.exit_code, empty.exit_code) == (2, 2, 2)
    assert "no sandbox hosts" in empty.output


def test_sandbox_urls_wait_names_the_unreachable_replica():
    from typer.testing import CliRunner

    # nothing listens on port 9 of localhost (discard); the wait gives up after about 1 s
    res = CliRunner().invoke(sandbox_urls.app, ["--hosts", "127.0.0.1", "--port", "9", "--wait", "0.5"])
    assert res.exit_code == 1
    assert "http://127.0.0.1:9" in res.output
