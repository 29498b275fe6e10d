"""The app as a whole: the technique registry, the landing view, every named endpoint, nothing
loaded at import, and the shape every technique follows. Each technique's own endpoints are
tested in its tests/test_<technique>.py."""
from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from tabs.cyclegan import AVAILABLE as CYCLEGAN
from tabs.faces import AVAILABLE as FACES
from tabs.pianowave import AVAILABLE as PIANO
from tests.conftest import ROOT

EXPECTED = {"/deepdream", "/deepdream_preset", "/deepdream_stop", "/deepdream_zoom", "/latent_grid",
            "/latent_decode", "/latent_encode", "/latent_interpolate", "/style_transfer",
            "/style_stop", "/text_generate", "/text_compare", "/text_distribution", "/text_stop",
            "/text_example_prompt", "/wavenet_generate", "/wavenet_compare", "/wavenet_stop",
            "/wavenet_model_changed", "/ganlab_play", "/ganlab_pause", "/ganlab_new",
            "/ganlab_d_update", "/ganlab_g_update", "/ganlab_experiment", "/ganlab_click",
            "/ganlab_clear_points", "/ganlab_train", "/ganlab_digits_play",
            "/ganlab_digits_pause", "/ganlab_digits_new", "/ganlab_digits_train",
            "/ganlab_digits_samples", "/ganlab_digits_walk"}
CYCLEGAN_ENDPOINTS = {"/cyclegan_pair", "/cyclegan_translate", "/cyclegan_latent_edit"}
PIANO_ENDPOINTS = {"/piano_play", "/piano_stop", "/piano_note"}
FACE_ENDPOINTS = {"/faces_gallery", "/faces_pick", "/faces_arithmetic", "/faces_edit",
                  "/faces_interpolate"}


def test_every_named_endpoint_is_listed(client):
    listed = set(client.view_api(return_format="dict")["named_endpoints"])
    assert EXPECTED <= listed
    # the face tab's endpoints exist once its checkpoints do
    assert (FACE_ENDPOINTS <= listed) if FACES else not (FACE_ENDPOINTS & listed)
    assert (CYCLEGAN_ENDPOINTS <= listed) if CYCLEGAN else not (CYCLEGAN_ENDPOINTS & listed)
    assert (PIANO_ENDPOINTS <= listed) if PIANO else not (PIANO_ENDPOINTS & listed)


def test_models_are_not_loaded_at_import():
    """Importing the app (as Spaces does) builds the UI but loads no model."""
    code = ("import app, sys; loaded = [m.title for m in app.PIPELINES if m.loaded]; "
            "print(len(app.PIPELINES), loaded); sys.exit(1 if loaded else 0)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         cwd=str(ROOT))
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.strip().endswith("[]") and int(out.stdout.split()[0]) >= 4


def test_the_warm_up_loads_the_classroom_models_and_no_heavy_one():
    """Started with the server: the small models a class presses first are loaded in the
    background; the big ones (VGG19, Inception, vocoders) still wait for their tab."""
    code = ("import app, sys; app.warm_up().join(300); "
            "warm = [m.title for m in app.PIPELINES if m.warm]; "
            "wrong = [m.title for m in app.PIPELINES if m.loaded != m.warm]; "
            "print(warm, wrong); sys.exit(1 if wrong or not warm else 0)")
    run = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                         timeout=600)
    assert run.returncode == 0, run.stdout + run.stderr[-2000:]
    assert "WaveNet" in run.stdout and "language model" in run.stdout


def test_the_registry_builds_one_landing_entry_and_one_tab_per_technique():
    import app
    from tabs.common import GROUPS, Technique

    ids = [m.TECHNIQUE.id for m in app.TECHNIQUES]
    assert len(ids) == len(set(ids))
    config = app.demo.get_config_file()
    elem_ids = {c["props"].get("elem_id") for c in config["components"]}
    for module in app.TECHNIQUES:
        t = module.TECHNIQUE
        assert isinstance(t, Technique) and t.group in GROUPS and t.summary.endswith(".")
        assert module.__name__ == f"tabs.{t.id}"
        assert callable(module.build) and isinstance(module.PIPELINES, dict)
        if module.AVAILABLE:      # a landing button and a panel, inside its group's tab
            assert {f"start-{t.id}", f"{t.id}-panel", f"group-{t.group}"} <= elem_ids, t.id
        else:
            assert f"start-{t.id}" not in elem_ids


TECHNIQUE_IDS = ["faces", "vae", "pixelcnn", "ganlab", "cyclegan", "style", "deepdream", "charlm",
                 "wavenet", "pianowave", "vocoder"]


@pytest.mark.parametrize("technique", TECHNIQUE_IDS)
def test_every_technique_has_the_five_files_and_a_history(technique):
    import app

    assert [m.TECHNIQUE.id for m in app.TECHNIQUES] == TECHNIQUE_IDS
    for path in (f"models/{technique}.py", f"tabs/{technique}.py", f"train/{technique}.py",
                 f"tests/test_{technique}.py", f"benchmarks/{technique}.py", f"docs/{technique}.md"):
        assert (ROOT / path).is_file(), path


def project_imports(path) -> set[str]:
    """The project modules a file imports (absolute, or relative resolved to absolute)."""
    tree = ast.parse(path.read_text())
    package = path.parent.name
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = package + ("." + base if base else "")
            out |= {base} | {f"{base}.{a.name}" for a in node.names}
    tops = ("models", "tabs", "train", "tests", "benchmarks", "app")
    return {m for m in out if m.split(".")[0] in tops}


def modules() -> dict[str, set[str]]:
    files = [ROOT / "app.py"] + [p for folder in ("models", "tabs", "train", "benchmarks")
                                 for p in sorted((ROOT / folder).glob("*.py"))]
    graph = {}
    for path in files:
        name = "app" if path.name == "app.py" else f"{path.parent.name}.{path.stem}"
        graph[name.removesuffix(".__init__")] = project_imports(path)
    # an imported name may be a function of a module: keep the module
    return {m: {i if i in graph else i.rsplit(".", 1)[0] for i in deps} & set(graph)
            for m, deps in graph.items()}


def test_imports_keep_the_layers_apart_and_have_no_circles():
    graph = modules()
    for name, deps in graph.items():
        layer = name.split(".")[0]
        if layer in ("models", "tabs"):   # the product never imports the trainers or the tests
            assert not {d for d in deps if d.split(".")[0] in ("train", "tests", "benchmarks")}, name
        if layer == "models":              # and models/ knows no Gradio tab
            assert not {d for d in deps if d.startswith("tabs")}, name
        assert not {d for d in deps if d.startswith("tests")}, name
    seen, stack = set(), []

    def visit(node):
        if node in stack:
            pytest.fail("import circle: " + " -> ".join(stack[stack.index(node):] + [node]))
        if node in seen:
            return
        stack.append(node)
        for dep in graph[node]:
            if dep != node:
                visit(dep)
        stack.pop()
        seen.add(node)

    for node in graph:
        visit(node)


def test_the_product_never_reads_the_training_data():
    for folder in ("models", "tabs"):
        for path in (ROOT / folder).glob("*.py"):
            text = path.read_text()
            for sign in ('"shared"', "shared/data", "GDL_DATA", "data_root"):
                assert sign not in text, (path, sign)


def test_the_load_benchmarks_visitor_asks_what_the_page_would(client, app_url):
    """benchmarks.load's Browser sends the inputs' shown values over one session: its answers
    are the endpoint's answers to its defaults, a streamed one reports its first output."""
    from benchmarks.load import Browser

    picks = Browser(app_url, "faces_pick")
    first, done = picks.request()
    assert first is None and done > 0                 # one answer, nothing streamed before it
    assert picks.output[:3] == list(client.predict(api_name="/faces_pick"))[:3]
    text = Browser(app_url, "text_generate")
    for _ in range(2):                                # the same session asks again
        first, done = text.request()
        assert 0 < first <= done and text.output
