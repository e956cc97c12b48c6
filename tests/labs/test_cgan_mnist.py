"""Lab 02 (its grading end to end: tests/grading/test_labs_end_to_end.py): the
shipped checkpoint meets the issue's target through `labkit sample`; the lab's support module (embedding tools,
the sigma measurement, the model choice for Section 2, the explorer's frame drawn headless)."""

import matplotlib
import numpy as np
import pytest
import torch

from labkit.instructor.notebook import load_exports
from labkit.labs import cgan_mnist as lab2
from tests.grading.lab_grading import REPO, SOLUTIONS

matplotlib.use("Agg")
NOTEBOOK = SOLUTIONS / "02_cgan_mnist.ipynb"


@pytest.fixture(scope="module")
def solution():
    return load_exports(NOTEBOOK)


def tools(solution):
    """The notebook's interpolate and variations, which the explorer draws with."""
    return {"interpolate": solution.interpolate, "variations": solution.variations}


@pytest.fixture
def small_G(solution):
    torch.manual_seed(0)
    return solution.Generator(channels=4).eval()


@pytest.mark.slow
def test_shipped_checkpoint_meets_the_target_through_labkit_sample(tmp_path, solution):
    """Conditional accuracy >= 99 % and every class >= 97 % on 5,000 samples (the issue's target), labels written
    beside the samples, the grid drawn one class per row; the discriminator ships next to it and loads."""
    from labkit import cli, loadModel
    from labkit.metrics import evaluate_images

    out = tmp_path / "digits.npy"
    assert cli.main(["sample", str(REPO / "checkpoints" / "cgan_mnist.pt"), "--n", "5000", "--out", str(out),
                     "--grid", str(tmp_path / "grid.png")]) == 0
    images, labels = np.load(out), np.load(tmp_path / "digits.labels.npy")
    assert images.shape == (5000, 28, 28) and images.dtype == np.float32 and 0 <= images.min() and images.max() <= 1
    assert np.array_equal(np.bincount(labels), [500] * 10)
    scores = evaluate_images(images, "mnist", labels=labels, reference=False)
    assert scores["conditional_accuracy"] >= 0.99, scores
    assert min(scores["per_class_accuracy"]) >= 0.97, scores
    assert (tmp_path / "grid.png").stat().st_size > 10_000
    D = loadModel(REPO / "checkpoints" / "cgan_mnist_D.pt", model=solution.Discriminator())   # the notebook's class
    assert D(torch.zeros(2, 1, 28, 28), torch.tensor([3, 4])).shape == (2, 1)


def test_random_embeddings_follow_the_table_per_coordinate_and_belong_to_no_label():
    table = torch.tensor([[0.0, 10.0], [2.0, 14.0], [4.0, 12.0]])
    e = lab2.random_embeddings(table, 20000, seed=1)
    assert e.shape == (20000, 2)
    assert torch.allclose(e.mean(0), table.mean(0), atol=0.05)
    assert torch.allclose(e.std(0), table.std(0), rtol=0.03)
    assert torch.equal(lab2.random_embeddings(table, 5, seed=3), lab2.random_embeddings(table, 5, seed=3))
    assert not (torch.cdist(e[:100], table).min() == 0).any()
    with pytest.raises(ValueError, match="n_classes >= 2"):
        lab2.random_embeddings(table[:1], 3)
    with pytest.raises(ValueError, match="positive"):
        lab2.random_embeddings(table, 0)


def test_the_exploration_tools_refuse_a_generator_without_an_embedding():
    class Exported(torch.nn.Module):
        latent_dim, n_classes = 100, 10
    with pytest.raises(TypeError, match="loadModel\\(path, model=Generator"):
        lab2.label_table(Exported())


def test_explorer_inputs_mix_and_interpolate_as_the_sliders_say(solution, small_G):
    table = lab2.label_table(small_G)
    s = lab2.ExplorerSettings(label=2, sigma_z=0.0, sigma_e=0.0, mix_with=6, mix=0.25, label_b=9, t=1.0, columns=5)
    inputs = lab2.explorer_inputs(small_G, s, **tools(solution))
    z_var, e_var = inputs["variations"]
    assert z_var.shape == (5, small_G.latent_dim) and torch.all(z_var == 0)      # sigma_z = 0: the mean latent
    assert torch.allclose(e_var, (0.75 * table[2] + 0.25 * table[6]).expand(5, -1), atol=1e-6)
    z_path, e_path = inputs["path"]
    assert torch.allclose(e_path[0], e_var[0]) and torch.allclose(e_path[-1], table[9])
    z_point, e_point = inputs["point"]                                           # t = 1: the path's end
    assert torch.allclose(z_point[0], z_path[-1]) and torch.allclose(e_point[0], e_path[-1])
    noisy = lab2.explorer_inputs(small_G, lab2.ExplorerSettings(sigma_z=2.0, columns=400), **tools(solution))["variations"][0]
    assert abs(float(noisy.std()) - 2.0) < 0.1
    for bad, match in (({"label": 10}, "label must be a class"), ({"t": 1.5}, "t must be in"),
                       ({"sigma_e": -1.0}, "noise levels"), ({"columns": 1}, "columns")):
        with pytest.raises(ValueError, match=match):
            lab2.explorer_inputs(small_G, lab2.ExplorerSettings(**bad), **tools(solution))


def test_explorer_draws_one_static_frame_headless(solution, small_G, monkeypatch):
    import matplotlib.pyplot as plt

    monkeypatch.setenv("LABKIT_HEADLESS", "pytest")
    fig = lab2.explore(small_G, lab2.ExplorerSettings(label=4, sigma_z=0.5, mix=0.5, t=0.3), **tools(solution))
    assert isinstance(fig, matplotlib.figure.Figure) and len(fig.axes) == 3
    assert "σ_z 0.50" in fig.axes[0].get_title() and fig.axes[2].get_title().startswith("t = 0.30: classified ")
    frame = lab2.draw_explorer_frame(small_G, lab2.ExplorerSettings(), fig=fig, **tools(solution))   # redraws into the same figure
    assert frame is fig and len(fig.axes) == 3
    plt.close(fig)
    assert small_G.training is False


def test_sigma_effect_measures_each_class_and_sigma(small_G, solution):
    result = lab2.sigma_effect(small_G, solution.variations, (0.1, 1.0), n=4, on="embedding")
    assert result["kept"].shape == result["confidence"].shape == (2, 10)
    assert np.all((0 <= result["kept"]) & (result["kept"] <= 1)) and np.all(result["confidence"] > 0.1)
    ax = lab2.plot_sigma_effect({"noise on the embedding": result})
    assert len(ax.lines) == 2


def test_captioned_grid_and_predictions_say_what_is_wrong():
    import matplotlib.pyplot as plt

    images = torch.zeros(3, 1, 28, 28)
    fig = lab2.show_predictions(images, torch.tensor([[0.9], [0.2], [0.5]]), torch.tensor([1, 2, 3]))
    assert [t.get_text() for t in fig.axes[0].texts] == ["1: 0.90", "2: 0.20", "3: 0.50"]
    assert fig.axes[0].texts[0].get_color() == "tab:green" and fig.axes[0].texts[1].get_color() == "tab:red"
    plt.close(fig)
    with pytest.raises(ValueError, match="one caption per image"):
        lab2.captioned_grid(images, ["a"])
    with pytest.raises(ValueError, match="one of each per image"):
        lab2.show_predictions(images, torch.zeros(2), torch.zeros(3))


def test_choose_models_prefers_a_good_saved_model_then_falls_back_and_says_so(tmp_path, solution, capsys):
    from labkit import saveModel

    torch.manual_seed(0)
    G, D = solution.Generator(channels=4), solution.Discriminator(channels=4)
    build_G, build_D = (lambda: solution.Generator(channels=4)), (lambda: solution.Discriminator(channels=4))
    choice = lab2.choose_models([(tmp_path / "cgan_final.pt", tmp_path / "cgan_final_D.pt")], tmp_path / "none.pt",
                                build_G, build_D, current=(G, D), n=50)
    assert choice.G is G and "trained in this session" in choice.source
    assert "cgan_final.pt: not found" in capsys.readouterr().out
    saveModel(G, tmp_path / "cgan_final.pt")
    saveModel(D, tmp_path / "cgan_final_D.pt")
    choice = lab2.choose_models([(tmp_path / "cgan_final.pt", tmp_path / "cgan_final_D.pt")], tmp_path / "none.pt",
                                build_G, build_D, current=(G, D), min_accuracy=0.0, n=50)
    assert "your saved model" in choice.source and choice.D is not None and choice.G is not G
    assert torch.equal(choice.G.embedding.weight, G.embedding.weight)
    choice = lab2.choose_models([(tmp_path / "cgan_final.pt", tmp_path / "cgan_final_D.pt")], tmp_path / "none.pt",
                                build_G, build_D, current=(G, D), min_accuracy=0.99, n=50)
    assert choice.G is G and "< 99%" in capsys.readouterr().out


def test_fully_connected_baseline_has_the_lab_interface_and_saves(tmp_path):
    from labkit import loadModel, saveModel
    from labkit.sampling import generate

    torch.manual_seed(0)
    G, D = lab2.FCConditionalGenerator(embed_dim=8), lab2.FCConditionalDiscriminator(embed_dim=8)
    z, labels = torch.randn(4, 100), torch.tensor([0, 3, 3, 9])
    x = G(z, labels)
    assert x.shape == (4, 1, 28, 28) and torch.allclose(x, G.from_embedding(z, G.embedding(labels)))
    p = D(x, labels)
    assert p.shape == (4, 1) and bool(((0 < p) & (p < 1)).all())
    assert lab2.label_table(G).shape == (10, 8)
    saveModel(G.eval(), tmp_path / "fc.pt")
    images, drawn = generate(loadModel(tmp_path / "fc.pt"), 20, seed=0)
    assert images.shape == (20, 28, 28) and list(drawn[:3]) == [0, 1, 2]


def test_explorer_builds_its_sliders_and_redraws_when_one_moves(solution, small_G):
    pytest.importorskip("ipywidgets")
    import matplotlib.pyplot as plt

    ui = lab2.explore(small_G, interactive=True, **tools(solution))
    sliders = {w.description: w for row in ui.children for w in row.children}
    assert {"class", "σ on z", "σ on e", "mix with", "mix", "to class", "t", "seed"} <= set(sliders)
    before = plt.get_fignums()
    sliders["class"].value, sliders["t"].value = 5, 0.9        # each change redraws the frame (and closes it)
    assert plt.get_fignums() == before


def _drain(client, parent_id, timeout=300.0):
    """The iopub messages a request caused, up to the kernel's idle status for it.

    A kernel silent for ``timeout`` seconds has hung. The first request imports torch and builds the solution's
    definitions: seconds here, but over a minute on a loaded 2-core CI machine (CI once failed at 60 s).
    """
    import queue

    messages = []
    while True:
        try:
            msg = client.get_iopub_msg(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the kernel went quiet before finishing; got {[m['msg_type'] for m in messages]}")
        if msg["parent_header"].get("msg_id") != parent_id:
            continue
        messages.append(msg)
        if msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            return messages


def test_explorer_redraws_live_in_a_kernel_when_the_frontend_moves_a_slider(tmp_path, monkeypatch):
    """What Jupyter and Colab do, spoken over the kernel protocol: open the widgets, move the class slider as a
    browser does (a comm "update" message), and the kernel answers with a new PNG routed into the explorer's
    Output widget (the Output's msg_id names the slider's message, and the figure comes with that parent)."""
    pytest.importorskip("ipywidgets")
    from jupyter_client import KernelManager

    from labkit.instructor.notebook import current_interpreter_kernel

    monkeypatch.setenv("JUPYTER_PATH", str(tmp_path))
    monkeypatch.delenv("LABKIT_HEADLESS", raising=False)
    manager = KernelManager(kernel_name=current_interpreter_kernel(tmp_path))
    manager.start_kernel(cwd=str(tmp_path))
    client = manager.client()
    client.start_channels()
    try:
        client.wait_for_ready(timeout=60)
        code = (f"import torch\nfrom labkit.instructor.notebook import load_exports\n"
                f"from labkit.labs import cgan_mnist as lab2\n%matplotlib inline\n"
                f"solution = load_exports({str(NOTEBOOK)!r})\ntorch.manual_seed(0)\n"
                f"ui = lab2.explore(solution.Generator(channels=4).eval(), interactive=True,\n"
                f"                 interpolate=solution.interpolate, variations=solution.variations)")
        opened = _drain(client, client.execute(code))
        errors = [m["content"] for m in opened if m["msg_type"] == "error"]
        assert not errors, errors
        widgets = {m["content"]["comm_id"]: m["content"]["data"]["state"] for m in opened if m["msg_type"] == "comm_open"}
        by_description = {state.get("description"): comm for comm, state in widgets.items()}
        shown = {m["content"]["data"]["application/vnd.jupyter.widget-view+json"]["model_id"] for m in opened
                 if m["msg_type"] == "display_data" and "application/vnd.jupyter.widget-view+json" in m["content"]["data"]}
        outputs = [comm for comm in shown if widgets.get(comm, {}).get("_model_name") == "OutputModel"]
        assert outputs, "the explorer showed no Output widget to draw into"
        assert {"class", "σ on z", "σ on e", "mix", "t"} <= set(by_description), sorted(map(str, by_description))
        first_pngs = [m for m in opened if m["msg_type"] == "display_data" and "image/png" in m["content"]["data"]]
        assert first_pngs, "the explorer drew nothing when it opened"

        move = client.session.msg("comm_msg", {"comm_id": by_description["class"],
                                               "data": {"method": "update", "state": {"value": 7}, "buffer_paths": []}})
        client.shell_channel.send(move)
        answer = _drain(client, move["header"]["msg_id"])
        errors = [m["content"] for m in answer if m["msg_type"] == "error"]
        assert not errors, errors
        # Route the new figures as the browser does: an Output widget whose msg_id is set captures the outputs of
        # that message; the one set last (the innermost `with out:`) gets them.
        capturing, pngs_shown, pngs_elsewhere = [], [], []
        for m in answer:
            if m["msg_type"] == "comm_msg" and "msg_id" in m["content"]["data"].get("state", {}):
                comm = m["content"]["comm_id"]
                capturing = [c for c in capturing if c != comm]
                if m["content"]["data"]["state"]["msg_id"] == move["header"]["msg_id"]:
                    capturing.append(comm)
            elif m["msg_type"] == "display_data" and "image/png" in m["content"]["data"]:
                into = pngs_shown if capturing and capturing[-1] in outputs else pngs_elsewhere
                into.append(m["content"]["data"]["image/png"])
        assert not pngs_elsewhere, "the redraw went to an Output widget that is not on screen, or to none"
        assert len(pngs_shown) == 1, f"moving a slider should draw one new frame on screen, got {len(pngs_shown)}"
        pngs = pngs_shown
        assert pngs[0] != first_pngs[-1]["content"]["data"]["image/png"], "the frame did not change with the class"
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)


def test_quick_and_offline_samples_hold_every_class_in_equal_numbers():
    """The shipped samples are sorted by class: a limit must not keep only the first classes (issue 24)."""
    from labkit import datasets

    for name in ("mnist", "fashion_mnist"):
        for train, limit in ((True, 2000), (False, 500)):
            _, labels = datasets.tensors(name, train=train, limit=limit)
            assert np.bincount(labels.numpy(), minlength=10).tolist() == [limit // 10] * 10
    loaded = datasets.load("mnist", limit=50)
    assert np.bincount([loaded[i][1] for i in range(len(loaded))], minlength=10).tolist() == [5] * 10
    assert datasets.balanced_indices([0, 0, 0, 1, 2, 2], 6).tolist() == [0, 3, 4]   # the rarest class sets the count
    with pytest.raises(ValueError, match="too small"):
        datasets.balanced_indices(np.arange(10), 5)


def test_section_2_draws_from_a_seed_apart_from_the_networks_initialisation(solution):
    """Seed SEED again would redraw the embedding's initial values as noise (the σ = 2 row read 0 1 2 ... 9)."""
    import json

    cells = ["".join(c["source"]) for c in json.loads(NOTEBOOK.read_text())["cells"]]
    section2 = cells[next(i for i, c in enumerate(cells) if "# Section 2" in c):]
    code = "\n".join(c for c in section2 if "seed=" in c or "manual_seed" in c)
    assert "EXPLORE_SEED = SEED + 1000" in "\n".join(section2)
    assert "seed=SEED" not in code and "manual_seed(SEED)" not in code
    G = _Interface(torch.randn(10, 4))
    z = lab2.explorer_inputs(G, lab2.ExplorerSettings(sigma_z=1.0, seed=0, columns=10), **tools(solution))["variations"][0]
    assert not torch.allclose(z, torch.randn(10, 4, generator=torch.Generator().manual_seed(0)))   # not seed 0's


class _Interface(torch.nn.Module):
    """The lab's generator interface around a given embedding table (nothing is drawn)."""

    def __init__(self, table):
        super().__init__()
        self.latent_dim, self.n_classes = 4, len(table)
        self.embedding = torch.nn.Embedding.from_pretrained(table)

    def from_embedding(self, z, e):
        return torch.zeros(len(z), 1, 28, 28)


def test_headings_follow_the_handout():
    import json
    import re

    cells = [c for c in json.loads(NOTEBOOK.read_text())["cells"] if c["cell_type"] == "markdown"]
    numbers = [m for c in cells for m in re.findall(r"^#+ (?:TODO \d+ — )?(\d\.\d)\b", "".join(c["source"]), re.M)]
    assert [n for i, n in enumerate(numbers) if i == 0 or n != numbers[i - 1]] == \
        ["1.1", "1.2", "1.3", "1.4", "1.5", "2.1", "2.2", "2.3", "2.4", "2.5"]


# Issue 25, item 2: the TODOs' code appears only in their last hints, and no check message spells it. Beside each
# answer line of the solution, the expressions that make one (the messages may not use the losses' BCE(...) form
# either).
ANSWER_EXPRESSIONS = (
    "torch.cdist(e, table).argmin", "argmin(dim=1)", "nn.Embedding(N_CLASSES, embed_dim)", "torch.cat([z, e]",
    "[:, :, None, None]", "self.project(h)).sum(", "nn.Linear(64 * c, embed_dim", "D(fake.detach(), labels)",
    "torch.ones_like(p_real)", "torch.linspace(0, 1, steps)", "t[:, None]", "(1 - t) * a + t * b",
    "weight[label].repeat(n, 1)", "sigma * torch.randn(", "torch.zeros(n, latent_dim)", "(p_real > 0.5).float().mean()")
MESSAGE_ANSWERS = ANSWER_EXPRESSIONS + ("BCE(D(fake, labels), 1)", "BCE(D(real), 1) + BCE(D(fake), 0)",
                                        "BCE(D(fake), 1)", "self.embedding(labels)")
GIVEN_CODE = {"for c in range(N_CLASSES):"}   # a loop the notebook's given cells write too


def test_the_todos_code_is_only_in_their_last_hints():
    import re

    import nbformat

    from tests.labs import hint_rules

    answers = [line for line in hint_rules.answer_lines(NOTEBOOK) if line not in GIVEN_CODE]
    assert len(answers) >= 30
    assert hint_rules.leaks([hint_rules.text_before_the_last_hints(NOTEBOOK)], answers + list(ANSWER_EXPRESSIONS)) == []
    todos = [c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells if re.search(r"^## TODO \d", c.source, re.M)]
    assert len(todos) == 7
    hint_rules.require_a_hint_before_the_last(todos)   # a first hint with the approach, then the one with the code


def test_check_messages_name_the_mistake_not_the_answer():
    from tests.labs import hint_rules

    messages = hint_rules.message_strings(REPO / "labkit" / "checks" / "cgan_mnist.py")
    assert len(messages) > 100
    assert hint_rules.leaks(messages, hint_rules.answer_lines(NOTEBOOK) + list(MESSAGE_ANSWERS)) == []


def test_quick_mode_sizes_are_one_table():
    """Issue 23, item 6: what quick mode changes is read in one place (SIZES, from lab.pick), not in scattered
    `... if lab.quick else ...` expressions."""
    import nbformat

    code = [c.source for c in nbformat.read(NOTEBOOK, as_version=4).cells if c.cell_type == "code"]
    assert not [line for source in code for line in source.splitlines() if "if lab.quick" in line]
    tables = [source for source in code if "SIZES = lab.pick(" in source]
    assert len(tables) == 1
    assert code.index(tables[0]) < next(i for i, source in enumerate(code) if "datasets.tensors(" in source)
    intro = nbformat.read(NOTEBOOK, as_version=4).cells[0].source
    assert "`None`, as given, follows the\nenvironment variable `LABKIT_QUICK`: quick mode where it is `1`" in intro
    assert "a full run where it is `0` or not set" in intro and "in the `SIZES` table" in intro
