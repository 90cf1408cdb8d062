"""The web app as its users reach it: `diffedit-app` on localhost, called through its HTTP API (needs Gradio) and driven in a real
browser, headless Debian Chromium under Playwright (needs those too)."""
import base64, io, json, math, os, shutil, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import numpy as np, pytest
from PIL import Image
from browser import CHROMIUM, ARGS   # tests/browser.py


def _no_gradio():
    try: import gradio  # noqa: F401
    except ImportError: return "gradio is not installed (pip install -e '.[app]')"

def _no_browser():
    try: import playwright.sync_api  # noqa: F401
    except ImportError: return "playwright is not installed (pip install playwright; the browser is Debian's chromium)"
    if not Path(CHROMIUM).exists(): return f"no Chromium at {CHROMIUM} (apt-get install chromium)"

pytestmark = pytest.mark.skipif(bool(_no_gradio()), reason=_no_gradio() or '')
browser = pytest.mark.skipif(bool(_no_browser()), reason=_no_browser() or '')

def _free_port():
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

@pytest.fixture(scope='module')
def app_url(tmp_path_factory):
    "`diffedit-app` started on a free localhost port; its URL once it answers."
    port = _free_port(); log = tmp_path_factory.mktemp('app')/'app.log'
    env = {'OMP_NUM_THREADS': '1', **os.environ, 'HF_HUB_OFFLINE': '1', 'DIFFEDIT_MODEL': '', 'GRADIO_ANALYTICS_ENABLED': 'False', 'NO_PROXY': '127.0.0.1,localhost'}
    with open(log, 'w') as f:
        p = subprocess.Popen([sys.executable, '-m', 'diffedit.app', '--port', str(port), '--device', 'cpu'], stdout=f, stderr=subprocess.STDOUT, env=env)
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

@browser
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

@browser
def test_error_in_page(page):
    page.locator('#query textarea, #query input').first.fill('')
    page.locator('#run').click()
    err = page.get_by_text('prompt is empty', exact=False).first
    err.wait_for(timeout=120_000)
    assert err.is_visible()

# The HTTP API: what a script (or a browser sending odd JSON) can send, and the message it gets back.

def _upload(url, data, name='image.png'):
    "Upload the bytes `data` to the app; the file reference its API takes."
    b = 'diffedit-test-boundary'
    body = (f'--{b}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            'Content-Type: application/octet-stream\r\n\r\n').encode() + data + f'\r\n--{b}--\r\n'.encode()
    req = urllib.request.Request(url+'gradio_api/upload', data=body, headers={'Content-Type': f'multipart/form-data; boundary={b}'})
    return {'path': json.load(urllib.request.urlopen(req, timeout=60))[0], 'meta': {'_type': 'gradio.FileData'}}

def _call(url, data):
    "POST `data` (the button's inputs) to the `edit` endpoint; ('complete', outputs) or ('error', message)."
    body = json.dumps({'data': data}).encode()                        # NaN and Infinity go as JavaScript writes them
    req = urllib.request.Request(url+'gradio_api/call/edit', data=body, headers={'Content-Type': 'application/json'})
    eid = json.load(urllib.request.urlopen(req, timeout=60))['event_id']
    lines = urllib.request.urlopen(url+f'gradio_api/call/edit/{eid}', timeout=600).read().decode().splitlines()
    event = [l[7:] for l in lines if l.startswith('event: ')][-1]
    data = json.loads([l[6:] for l in lines if l.startswith('data: ')][-1])
    return event, (data.get('error') if event == 'error' and isinstance(data, dict) else data)

@pytest.fixture(scope='module')
def scene_file(app_url):
    from diffedit.scenes import make_scene
    buf = io.BytesIO(); make_scene(['horse', 'tree'], 'grass', seed=1).image.save(buf, 'PNG')
    return _upload(app_url, buf.getvalue())

REF, QUERY = 'a horse and a tree on grass', 'a zebra and a tree on grass'
GOOD = dict(ref=REF, query=QUERY, r=0.7, n=2, threshold=0.5, g=7.5, guide='cfg', schedule='constant', steps=5, seed=0, keep=True, refine=2., word_weight=1.5)
API_BAD = {                                                           # field changed: words the message must hold
    'nan n':           (dict(n=math.nan), ['n', 'whole number']),
    'nan steps':       (dict(steps=math.nan), ['steps', 'whole number']),
    'fractional steps': (dict(steps=5.5), ['steps', 'whole number']),
    'nan seed':        (dict(seed=math.nan), ['seed', 'whole number']),
    'huge seed':       (dict(seed=1e30), ['seed', '2**64-1']),
    'nan guidance':    (dict(g=math.nan), ['guidance scale', 'finite']),
    'inf guidance':    (dict(g=math.inf), ['guidance scale', 'from 0 to 15']),
    'nan r':           (dict(r=math.nan), ['r', 'finite']),
    'null threshold':  (dict(threshold=None), ['threshold', 'number']),
    'negative n':      (dict(n=-3), ['n', 'from 1 to 20']),
    'negative refine': (dict(refine=-1), ['refine', 'from 0 to 8']),
    'nan refine':      (dict(refine=math.nan), ['refine', 'finite']),
    'word weight 0':   (dict(word_weight=0), ['word weight', 'from 0.1 to 4']),
    'nan word weight': (dict(word_weight=math.nan), ['word weight', 'finite']),
    'empty query':     (dict(query=''), ['prompt is empty']),
    'unknown guide':   (dict(guide='bogus'), ['bogus']),
}

def _inputs(image, **kw):
    d = {**GOOD, **kw}
    return [image, d['ref'], d['query'], d['r'], d['n'], d['threshold'], d['g'], d['guide'], d['schedule'], d['steps'], d['seed'], d['keep'], d['refine'], d['word_weight']]

@pytest.mark.parametrize('name', API_BAD)
def test_api_bad_input(name, app_url, scene_file):
    change, words = API_BAD[name]
    event, msg = _call(app_url, _inputs(scene_file, **change))
    assert event == 'error' and msg, (event, msg)
    assert all(w.lower() in str(msg).lower() for w in words), msg

def test_api_not_an_image(app_url):
    event, msg = _call(app_url, _inputs(_upload(app_url, b'not an image at all', 'notes.png')))
    assert event == 'error' and 'not an image' in str(msg), (event, msg)

def test_api_edit_after_errors(app_url, scene_file):
    "After all the bad input above, the app still edits."
    event, out = _call(app_url, _inputs(scene_file))
    assert event == 'complete' and len(out) == 3, (event, out)

def test_api_16bit_upload(app_url):
    "A 16-bit greyscale PNG is scaled to 8 bits, not clipped to white: mid-grey stays mid-grey."
    buf = io.BytesIO(); Image.fromarray(np.full((64, 64), 32768, np.uint16)).save(buf, 'PNG')
    event, out = _call(app_url, _inputs(_upload(app_url, buf.getvalue(), 'grey16.png')))
    assert event == 'complete', (event, out)
    over = Image.open(io.BytesIO(urllib.request.urlopen(out[1]['url'], timeout=60).read())).convert('L')
    assert 100 < np.median(np.asarray(over)) < 160, np.median(np.asarray(over))

def _fetch(out): return np.asarray(Image.open(io.BytesIO(urllib.request.urlopen(out['url'], timeout=60).read())).convert('RGB'))

def test_api_keep_background(app_url, scene_file):
    "With the box ticked (the default) the result keeps many of the input's pixels exactly; unticked, the decoded image keeps few."
    from diffedit.scenes import make_scene
    a = np.asarray(make_scene(['horse', 'tree'], 'grass', seed=1).image)
    same = {}
    for keep in (True, False):
        event, out = _call(app_url, _inputs(scene_file, keep=keep))
        assert event == 'complete', (event, out)
        b = Image.fromarray(_fetch(out[2])).resize((64, 64), Image.NEAREST)
        same[keep] = (np.asarray(b) == a).all(-1).mean()
    assert same[True] > 0.3 > same[False], same
