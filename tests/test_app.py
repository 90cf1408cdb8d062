"The web app in a real browser: headless Debian Chromium driven by Playwright, against `diffedit app` on localhost."
import base64, io, os, shutil, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import numpy as np, pytest
from PIL import Image
from browser import CHROMIUM, ARGS   # tests/browser.py


def _missing():
    try: import gradio  # noqa: F401
    except ImportError: return "gradio is not installed (pip install -e '.[app]')"
    try: import playwright.sync_api  # noqa: F401
    except ImportError: return "playwright is not installed (pip install playwright; the browser is Debian's chromium)"
    if not Path(CHROMIUM).exists(): return f"no Chromium at {CHROMIUM} (apt-get install chromium)"

pytestmark = pytest.mark.skipif(bool(_missing()), reason=_missing() or '')

def _free_port():
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

@pytest.fixture(scope='module')
def app_url(tmp_path_factory):
    "`diffedit app` started on a free localhost port; its URL once it answers."
    port = _free_port(); log = tmp_path_factory.mktemp('app')/'app.log'
    env = {'OMP_NUM_THREADS': '1', **os.environ, 'HF_HUB_OFFLINE': '1', 'DIFFEDIT_MODEL': '', 'GRADIO_ANALYTICS_ENABLED': 'False', 'NO_PROXY': '127.0.0.1,localhost'}
    with open(log, 'w') as f:
        p = subprocess.Popen([sys.executable, '-m', 'diffedit.cli', 'app', '--port', str(port), '--device', 'cpu'], stdout=f, stderr=subprocess.STDOUT, env=env)
    url = f'http://127.0.0.1:{port}/'
    try:
        for _ in range(300):
            if p.poll() is not None: pytest.fail(f"the app exited with code {p.returncode}:\n{log.read_text()}")
            try:
                urllib.request.urlopen(url, timeout=2); break
            except OSError: time.sleep(1)
        else: pytest.fail(f"the app did not answer at {url} in 300 s:\n{log.read_text()}")
        yield url
    finally:
        p.terminate()
        try: p.wait(20)
        except subprocess.TimeoutExpired: p.kill()

@pytest.fixture(scope='module')
def page(app_url):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        pg = b.new_page(viewport={'width': 1280, 'height': 1000})
        pg.set_default_timeout(60_000)
        pg.goto(app_url); pg.wait_for_selector('#run')
        yield pg
        b.close()

def _image(page, elem_id):
    "The PIL image shown in the Gradio image component `elem_id`, fetched by the page itself."
    src = page.locator(f'#{elem_id} img').first.get_attribute('src')
    if src.startswith('data:'): data = base64.b64decode(src.split(',', 1)[1])
    else: data = bytes(page.evaluate("async u => Array.from(new Uint8Array(await (await fetch(u)).arrayBuffer()))", src))
    return Image.open(io.BytesIO(data)).convert('RGB')

def _wait_image(page, elem_id, timeout=300):
    page.wait_for_selector(f'#{elem_id} img', timeout=timeout*1000)

def test_edit_in_browser(page, tmp_path):
    from diffedit.scenes import make_scene
    scene = make_scene(['horse', 'tree'], 'grass', seed=4).image
    scene.save(tmp_path/'scene.png')
    # upload: clear the example image first, then give the file input our scene
    clear = page.locator('#input button[aria-label="Clear"], #input button[title="Clear"]')
    if clear.count(): clear.first.click()
    page.locator('#input input[type=file]').set_input_files(str(tmp_path/'scene.png'))
    page.locator('#ref textarea, #ref input').first.fill('a horse and a tree on grass')
    page.locator('#query textarea, #query input').first.fill('a zebra and a tree on grass')
    page.locator('#steps input[type=number]').fill('20'); page.locator('#steps input[type=number]').press('Enter')
    page.locator('#n input[type=number]').fill('4'); page.locator('#n input[type=number]').press('Enter')
    page.wait_for_timeout(500)
    page.locator('#run').click()
    _wait_image(page, 'result')
    res, over = _image(page, 'result'), _image(page, 'overlay')
    page.screenshot(path=os.environ.get('DIFFEDIT_APP_SCREENSHOT') or str(tmp_path/'app.png'), full_page=True)
    res, over = [x.resize(scene.size, Image.NEAREST) for x in (res, over)]
    a, b, o = [np.asarray(x, dtype=np.float32) for x in (scene, res, over)]
    m = np.abs(o-a).sum(-1) > 30                                        # the mask: where the overlay painted the input
    assert 0.02 < m.mean() < 0.6, m.mean()
    inside, outside = np.abs(a-b)[m].mean(), np.abs(a-b)[~m].mean()
    assert inside > 10 and inside > 2*outside, (inside, outside)

def test_error_in_page(page):
    page.locator('#query textarea, #query input').first.fill('')
    page.locator('#run').click()
    err = page.get_by_text('prompt is empty', exact=False).first
    err.wait_for(timeout=120_000)
    assert err.is_visible()
