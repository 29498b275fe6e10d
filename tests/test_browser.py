"""The real app in headless Debian Chromium (Playwright): the landing view reaches every
technique in one click, every tab opens, the examples run to the end, no error toast and no
console error; screenshots go to artifacts/."""
from __future__ import annotations

import os
import shutil

import pytest

from tabs import cyclegan as tab_cyclegan
from tabs.cyclegan import AVAILABLE as CYCLEGAN
from tabs.faces import AVAILABLE as FACES
from tabs.pianowave import AVAILABLE as PIANO
from tabs.vocoder import GAN as GAN_VOCODER
from tabs.pixelcnn import AVAILABLE as PIXELCNN
from tabs.wavenet import MODEL_NAMES as WAVENET_MODELS
from tests.conftest import ARTIFACTS

CHROMIUM = os.environ.get("CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync",
         "--disable-dev-shm-usage"]

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def browser():
    playwright = pytest.importorskip("playwright.sync_api")
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"Chromium not found at {CHROMIUM}: `make test` installs Debian's chromium")
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        yield b
        b.close()


def open_page(browser, url, width: int = 1280, height: int = 900, **context):
    page = browser.new_page(viewport={"width": width, "height": height}, **context)
    problems: list[str] = []
    page.on("console", lambda m: problems.append(f"console: {m.text}") if m.type == "error" else None)
    page.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    page.goto(url)
    page.get_by_text("Generative Deep Learning Studio").first.wait_for(timeout=60_000)
    return page, problems


def set_number(scope, label: str, value: str) -> None:
    """Type into a slider's number box (as a person would) and confirm with Enter."""
    box = scope.get_by_label(f"number input for {label}", exact=True)
    box.fill(value)
    box.press("Enter")


COVERED = """() => {
  const covered = [];
  for (const label of document.querySelectorAll('label[data-testid="block-label"]')) {
    const block = label.closest('.block');
    const l = label.getBoundingClientRect();
    if (!block || block.offsetParent === null || l.width === 0 || l.height === 0) continue;
    for (const media of block.querySelectorAll('img, canvas, audio, video')) {
      const m = media.getBoundingClientRect();
      if (label.contains(media) || m.width === 0 || m.height === 0) continue;
      const x = Math.min(l.right, m.right) - Math.max(l.left, m.left);
      const y = Math.min(l.bottom, m.bottom) - Math.max(l.top, m.top);
      if (x > 1 && y > 1) covered.push(label.innerText.trim() + ' covers its ' + media.tagName);
    }
  }
  return covered;
}"""


def covered_outputs(page) -> list[str]:
    """Labels whose box overlaps the picture, canvas or player of their own component."""
    return page.evaluate(COVERED)


def error_toasts(page) -> list[str]:
    return [t for t in page.locator(".toast-body.error, .toast-wrap .error").all_inner_texts() if t]


WAVENET = bool(WAVENET_MODELS)


def open_technique(page, technique: str) -> None:
    """As a visitor does: back to the landing view, then the technique's button."""
    page.get_by_role("tab", name="Start").click()
    page.locator(f"#start-{technique}").click()
    page.locator(f"#{technique}-panel").wait_for(state="visible", timeout=15_000)


def check_faces(page) -> None:
    open_technique(page, "faces")
    panel = page.locator("#faces-panel")
    page.locator("#faces-result img").wait_for(timeout=60_000)
    page.locator("#faces-status").get_by_text("classifier reads").wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "faces-first-visit.png"), full_page=True)
    before = page.locator("#faces-a textarea, #faces-a input").first.input_value()
    gallery = panel.locator("#faces-gallery img")
    box = gallery.bounding_box()
    tile = box["width"] / 8
    gallery.click(position={"x": 2.5 * tile, "y": 1.5 * tile})   # row 1, column 2: face 10
    page.wait_for_function("(b) => { const e = document.querySelector('#faces-a textarea, #faces-a input');"
                           " return e && e.value !== b; }", arg=before, timeout=15_000)
    assert page.locator("#faces-a textarea, #faces-a input").first.input_value().endswith("10")
    page.get_by_role("button", name="Compute A - B + C").click()
    page.wait_for_timeout(500)
    page.locator("#faces-status").get_by_text("classifier reads").wait_for(timeout=30_000)
    page.get_by_role("button", name="Interpolate").click()
    page.get_by_text("in 10 steps").first.wait_for(timeout=30_000)
    page.get_by_role("button", name="Apply").click()
    page.get_by_text("reads the edited face").first.wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "faces-used.png"), full_page=True)
    assert not error_toasts(page)


def test_every_tab_and_the_deepdream_example(browser, app_url):
    import app

    ARTIFACTS.mkdir(exist_ok=True)
    page, problems = open_page(browser, app_url)
    page.screenshot(path=str(ARTIFACTS / "landing.png"), full_page=True)
    techniques = [m.TECHNIQUE for m in app.available()]
    assert all(page.locator(f"button#start-{t.id}").is_visible() for t in techniques)
    for t in techniques:            # every technique one click from the landing view
        open_technique(page, t.id)
        page.wait_for_timeout(3000)     # its first view
        tab = page.locator(f"#{t.id}-panel-button")          # its tab, open, with its label
        assert tab.is_visible() and tab.get_attribute("aria-selected") == "true", t.title
        assert tab.inner_text().strip() == t.label
        page.screenshot(path=str(ARTIFACTS / f"tab-{t.id}.png"), full_page=True)
        assert not error_toasts(page), t.title
        assert covered_outputs(page) == [], t.title

    # face arithmetic: gallery and a preset's result on the first visit; a click on a face
    # adds it to group A; compute, edit, interpolate
    if FACES:
        check_faces(page)

    # latent grid: the grid appears on first visit; a click on a cell shows it with its z
    open_technique(page, "vae")
    grid = page.locator("#latent-grid img")
    grid.wait_for(timeout=60_000)
    box = grid.bounding_box()
    grid.click(position={"x": box["width"] * 0.1, "y": box["height"] * 0.9})
    page.get_by_text("cell row").first.wait_for(timeout=30_000)
    assert "column" in page.get_by_text("cell row").first.inner_text()
    page.get_by_role("button", name="Zoom in", exact=True).filter(has_text="Zoom in").click()
    page.get_by_text("window z[0] -0.82..+0.82").first.wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "latent-grid.png"), full_page=True)
    assert not error_toasts(page)

    # PixelCNN: the receptive fields on the first visit; four samples, written row by row
    if PIXELCNN:
        open_technique(page, "pixelcnn")
        panel = page.locator("#pixelcnn-panel")
        panel.get_by_role("tab", name="Receptive field and blind spot").click()
        page.locator("#pixelcnn-rf-status").get_by_text("row 14, column 14").wait_for(timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / "pixelcnn-receptive-field.png"), full_page=True)
        panel.get_by_role("tab", name="Sample").click()
        set_number(panel, "Number of images", "4")
        page.get_by_role("button", name="Sample").click()
        page.locator("#pixelcnn-status").get_by_text("Done: 4 images").wait_for(timeout=120_000)
        page.screenshot(path=str(ARTIFACTS / "pixelcnn-samples.png"), full_page=True)
        assert not error_toasts(page)

    # CycleGAN: a held-out face translated on the first visit; a click on a face of the other
    # side turns the direction round, and Translate translates it
    if CYCLEGAN:
        open_technique(page, "cyclegan")
        status = page.locator("#cyclegan-status")
        status.get_by_text("blond hair -> black hair -> blond hair").wait_for(timeout=60_000)
        gallery = page.locator("#cyclegan-gallery img")
        box = gallery.bounding_box()
        gallery.click(position={"x": box["width"] * 0.3, "y": box["height"] * 0.75})  # bottom row
        back = page.locator("#cyclegan-direction").get_by_label("black hair -> blond hair")
        for _ in range(150):
            if back.is_checked():
                break
            page.wait_for_timeout(100)
        assert back.is_checked()
        page.get_by_role("button", name="Translate", exact=True).click()
        status.get_by_text("black hair -> blond hair -> black hair").wait_for(timeout=60_000)
        assert "face classifier reads" in status.inner_text()
        page.screenshot(path=str(ARTIFACTS / "cyclegan.png"), full_page=True)
        if "glasses" in tab_cyclegan.PAIR_NAMES:   # another pair: its first face, translated
            page.get_by_label(tab_cyclegan.PAIRS["glasses"][0]).check()
            status.get_by_text("glasses -> no glasses -> glasses").wait_for(timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "cyclegan-glasses.png"), full_page=True)
        assert not error_toasts(page)

    # style transfer: an example at a small size, run to the end
    open_technique(page, "style")
    panel = page.locator("#style-panel")
    panel.get_by_text("Grace Hopper in stained cells").click()
    panel.locator("img").first.wait_for(timeout=15_000)          # the example's pictures
    set_number(panel, "Output size (px)", "192")
    set_number(panel, "Iterations", "20")
    page.get_by_role("button", name="Stylise").click()
    status = page.locator("#style-status")
    status.get_by_text("Done").wait_for(timeout=240_000)
    assert "192" in status.inner_text()
    page.screenshot(path=str(ARTIFACTS / "style-result.png"), full_page=True)
    assert not error_toasts(page)

    open_technique(page, "deepdream")
    page.locator("#deepdream-panel .gallery-item").first.click()
    page.wait_for_timeout(1000)
    page.get_by_role("button", name="Dream").first.click()
    status = page.locator("#deepdream-status")
    status.get_by_text("Done").wait_for(timeout=240_000)
    assert "octave 3/3" in status.inner_text()
    page.screenshot(path=str(ARTIFACTS / "deepdream-result.png"), full_page=True)
    assert page.locator("img").count() >= 2  # the input example and the dream
    assert not error_toasts(page)

    # text sampling: generate (streams, then the coloured view), compare, the distribution
    open_technique(page, "charlm")
    panel = page.locator("#charlm-panel")
    panel.locator("tr.tr-body").last.click()              # an example prompt
    page.wait_for_timeout(500)
    set_number(panel, "Length (characters)", "120")
    page.get_by_role("button", name="Generate").click()
    status = page.locator("#text-status")
    status.get_by_text("Done").wait_for(timeout=60_000)
    assert len(page.locator("#text-colours").inner_text()) >= 120
    assert page.locator("#text-colours span[title]").count() == 120
    page.screenshot(path=str(ARTIFACTS / "text-generate.png"), full_page=True)
    page.get_by_role("button", name="Compare temperatures").first.click()
    page.locator("#text-status").get_by_text("Done: 120/120").wait_for(timeout=60_000)
    texts = [page.locator(f"#text-t{i} textarea").input_value() for i in range(5)]
    assert all(len(t) >= 120 for t in texts) and len(set(texts)) >= 3
    page.screenshot(path=str(ARTIFACTS / "text-compare.png"), full_page=True)
    page.get_by_role("button", name="See the distribution").click()
    page.locator("#text-status").get_by_text("Most likely next character").wait_for(timeout=60_000)
    page.locator("#text-plot").locator("img, svg, canvas").first.wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "text-distribution.png"), full_page=True)
    assert not error_toasts(page)

    # WaveNet: two seconds stream into the player, then the waveform/spectrogram and the WAV
    if WAVENET:
        open_technique(page, "wavenet")
        panel = page.locator("#wavenet-panel")
        assert "128 ms" in panel.locator("#wavenet-rf").inner_text()
        set_number(panel, "Duration (seconds)", "2")
        page.get_by_role("button", name="Generate").last.click()
        status = page.locator("#wavenet-status")
        status.get_by_text("Done").wait_for(timeout=120_000)
        assert "real time" in status.inner_text()
        page.locator("#wavenet-plot img").wait_for(timeout=30_000)
        assert page.locator("#wavenet-wav").get_by_text(".wav").count() >= 1
        page.screenshot(path=str(ARTIFACTS / "wavenet-result.png"), full_page=True)
        assert not error_toasts(page)

    assert problems == []


def touch_drag(page, locator, points) -> None:
    """A finger drawn across an element (fractions of its box), as a phone sends it."""
    cdp = page.context.new_cdp_session(page)
    box = locator.bounding_box()
    xy = [{"x": box["x"] + fx * box["width"], "y": box["y"] + fy * box["height"]} for fx, fy in points]
    cdp.send("Input.dispatchTouchEvent", {"type": "touchStart", "touchPoints": [xy[0]]})
    for point in xy[1:]:
        cdp.send("Input.dispatchTouchEvent", {"type": "touchMove", "touchPoints": [point]})
    cdp.send("Input.dispatchTouchEvent", {"type": "touchEnd", "touchPoints": []})


@pytest.mark.skipif(not PIANO, reason="no piano WaveNet shipped")
def test_the_piano_tab_plays_an_example_beside_fluidsynth_and_checks_a_note(browser, app_url):
    """An example tune: its roll, the WaveNet's performance streamed, fluidsynth's render made
    ahead of time beside it; then one key alone and the pitch the studio heard."""
    page, problems = open_page(browser, app_url)
    open_technique(page, "pianowave")
    panel = page.locator("#pianowave-panel")
    # a tune goes into the notes box; a held-out piece is played as the example
    panel.locator("#piano-example input").click()
    page.get_by_role("option", name="Ode to joy").click()
    page.wait_for_function("document.querySelector('#piano-text textarea').value"
                           ".startsWith('E4 E4 F4')", timeout=10_000)
    assert page.locator("#piano-mode").get_by_label("Typed notes").is_checked()
    panel.locator("#piano-example input").click()
    page.get_by_role("option", name="Maple Leaf Rag").click()
    page.wait_for_function("document.querySelector('#piano-mode input[value=\"Example\"]')"
                           ".checked", timeout=10_000)
    page.locator("#piano-run").click()
    page.locator("#piano-roll img").wait_for(timeout=60_000)
    status = page.locator("#piano-status")
    status.get_by_text("Done").wait_for(timeout=120_000)
    assert "ahead of time" in status.inner_text()
    page.locator("#piano-plot img").wait_for(timeout=30_000)
    assert page.locator("#piano-wav").get_by_text(".wav").count() >= 1
    page.screenshot(path=str(ARTIFACTS / "piano-result.png"), full_page=True)
    panel.get_by_role("tab", name="Single notes").click()
    page.locator("#piano-check").click()
    page.locator("#piano-verdict").get_by_text("Asked for").wait_for(timeout=60_000)
    page.locator("#piano-key-plot img").wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "piano-note.png"), full_page=True)
    assert not error_toasts(page)
    assert problems == []


@pytest.mark.skipif(not GAN_VOCODER, reason="no GAN vocoder shipped")
def test_the_vocoder_tab_rebuilds_a_sentence_then_an_edited_one(browser, app_url):
    """First view: the example's mel and recording. Rebuild: Griffin-Lim and the GAN, the
    WaveNet streamed, the aligned spectrograms and the times. Then slower, higher and with a
    box erased: the conditioning shows the box."""
    page, problems = open_page(browser, app_url)
    open_technique(page, "vocoder")
    page.locator("#vocoder-mel img").wait_for(timeout=60_000)
    page.locator("#vocoder-status").get_by_text("Press Rebuild").wait_for(timeout=30_000)
    page.locator("#vocoder-run").click()
    status = page.locator("#vocoder-status")
    status.get_by_text("Done").wait_for(timeout=120_000)
    page.locator("#vocoder-compare img").wait_for(timeout=30_000)
    times = page.locator("#vocoder-times").inner_text()
    assert "Griffin-Lim" in times and "GAN vocoder" in times and "real time" in times
    page.screenshot(path=str(ARTIFACTS / "vocoder-result.png"), full_page=True)
    panel = page.locator("#vocoder-panel")
    panel.get_by_text("Edit the spectrogram").click()
    panel.get_by_label("Erase").check()
    set_number(panel, "Speed (x as long)", "1.5")
    set_number(panel, "Pitch (semitones)", "3")
    page.locator("#vocoder-run").click()
    status.get_by_text("WaveNet vocoder").or_(status.get_by_text("Griffin-Lim")).first.wait_for(
        timeout=60_000)
    status.get_by_text("Done").wait_for(timeout=120_000)
    said = status.inner_text()
    assert "1.5x as long" in said and "+3 semitones" in said and "erased" in said
    page.screenshot(path=str(ARTIFACTS / "vocoder-edited.png"), full_page=True)
    assert not error_toasts(page)
    assert problems == []


def test_phone_layout_has_no_errors(browser, app_url):
    import app

    page, problems = open_page(browser, app_url, width=390, height=844, has_touch=True,
                               is_mobile=True)
    page.screenshot(path=str(ARTIFACTS / "phone-landing.png"), full_page=True)
    # every technique one tap from the landing view, its first view with nothing covered
    for t in [m.TECHNIQUE for m in app.available()]:
        open_technique(page, t.id)
        page.wait_for_timeout(3000)
        if t.id == "faces":           # its first view: a result without another tap
            page.locator("#faces-result img").wait_for(timeout=60_000)
        page.screenshot(path=str(ARTIFACTS / f"phone-{t.id}.png"), full_page=True)
        assert covered_outputs(page) == [], t.title
        # every group and every technique of this one shown as a tab, none in a "..." menu
        neighbours = [m.TECHNIQUE.id for m in app.available() if m.TECHNIQUE.group == t.group]
        assert all(page.locator(f"#{i}-panel-button").is_visible() for i in neighbours), t.title
        assert all(page.locator(f"#group-{g}-button").is_visible()
                   for g in {m.TECHNIQUE.group for m in app.available()}), t.title
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= 400, f"{t.title} scrolls sideways on a phone ({width}px)"
    # the sketchpad draws on the first touch: a stroke, then Encode finds a drawing
    open_technique(page, "vae")
    canvas = page.locator("#vae-sketch canvas").first
    canvas.scroll_into_view_if_needed()
    touch_drag(page, canvas, [(0.45, 0.2 + k / 20) for k in range(12)])
    page.get_by_role("button", name="Encode").click()
    page.locator("#vae-panel").get_by_text("z = (").first.wait_for(timeout=30_000)
    page.screenshot(path=str(ARTIFACTS / "phone-sketch.png"), full_page=False)
    assert problems == [] and not error_toasts(page)


def test_the_sketchpad_draws_on_the_first_mouse_drag(browser, app_url):
    page, problems = open_page(browser, app_url)
    open_technique(page, "vae")
    canvas = page.locator("#vae-sketch canvas").first
    canvas.scroll_into_view_if_needed()
    box = canvas.bounding_box()
    page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * 0.2)
    page.mouse.down()
    for k in range(12):
        page.mouse.move(box["x"] + box["width"] * 0.5, box["y"] + box["height"] * (0.2 + k / 20), steps=2)
    page.mouse.up()
    page.get_by_role("button", name="Encode").click()
    page.locator("#vae-panel").get_by_text("z = (").first.wait_for(timeout=30_000)
    # cleared, it is a black canvas with the brush picked again
    page.get_by_role("button", name="Clear the drawing").click()
    page.wait_for_timeout(500)
    assert page.locator("#vae-sketch button[aria-label=Brush]").first.get_attribute("class").count("highlight")
    assert problems == [] and not error_toasts(page)


def test_the_gan_lab_plays_pauses_and_takes_clicked_points(browser, app_url):
    page, problems = open_page(browser, app_url)
    open_technique(page, "ganlab")
    status = page.locator("#ganlab-status")
    status.get_by_text("Round 0 of a new game").wait_for(timeout=30_000)
    page.locator("#ganlab-play").click()
    page.wait_for_function("() => /Round [1-9]/.test(document.querySelector('#ganlab-status').innerText)",
                           timeout=30_000)
    page.wait_for_timeout(1500)
    page.locator("#ganlab-pause").click()
    status.get_by_text("Paused").wait_for(timeout=15_000)
    page.screenshot(path=str(ARTIFACTS / "ganlab-played.png"), full_page=True)
    page.locator("#ganlab-d").click()
    status.get_by_text("One D update").wait_for(timeout=15_000)
    # a named experiment sets the knobs and says what it shows
    page.locator("#ganlab-experiment input").click()
    page.get_by_role("option", name="Mode collapse", exact=True).click()
    page.locator("#ganlab-panel").get_by_text("Metz et al.").first.wait_for(timeout=15_000)
    # your own points: pick the target, click the plane twice
    page.locator("#ganlab-panel").get_by_text("Your points", exact=True).click()
    status.get_by_text("Click on the plane").wait_for(timeout=15_000)
    field = page.locator("#ganlab-field img")
    for fx, fy in [(0.3, 0.3), (0.7, 0.6)]:
        box = field.bounding_box()
        field.click(position={"x": fx * box["width"], "y": fy * box["height"]})
        page.wait_for_timeout(1000)
    status.get_by_text("modes covered 0/2").wait_for(timeout=15_000)
    page.screenshot(path=str(ARTIFACTS / "ganlab-your-points.png"), full_page=True)
    assert covered_outputs(page) == []
    assert problems == [] and not error_toasts(page)


def test_the_gan_lab_digits_page_trains_live_and_shows_the_trained_gan(browser, app_url):
    from models.digitgan import shipped_available
    from models.digits import find_set

    page, problems = open_page(browser, app_url)
    open_technique(page, "ganlab")
    page.get_by_role("tab", name="Digits and clothes").click()
    if shipped_available("mlp", "mnist"):
        page.locator("#digits-shipped-status").get_by_text("Fréchet distance").wait_for(timeout=30_000)
        assert page.locator("#digits-shipped img").count() == 1
        page.locator("#digits-walk").click()
        page.locator("#digits-walk-image img").wait_for(timeout=30_000)
    if find_set("mnist") is not None:
        status = page.locator("#digits-status")
        page.locator("#digits-play").click()
        page.wait_for_function("() => /Round [1-9]/.test(document.querySelector('#digits-status').innerText)",
                               timeout=30_000)
        page.wait_for_timeout(9000)                      # past the first measurement
        page.locator("#digits-pause").click()
        status.get_by_text("Paused").wait_for(timeout=15_000)
        status.get_by_text("classes covered").wait_for(timeout=15_000)
        assert page.locator("#digits-grid img").count() == 1
    page.screenshot(path=str(ARTIFACTS / "ganlab-digits.png"), full_page=True)
    assert covered_outputs(page) == []
    assert problems == [] and not error_toasts(page)
