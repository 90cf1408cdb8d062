"""The web app as its users reach it: `diffedit-app` on localhost, called through its HTTP API (needs Gradio) and driven in a real
browser, headless Debian Chromium under Playwright (needs those too)."""
import base64, io, json, math, os, shutil, socket, subprocess, sys, time, urllib.request
from pathlib import Path
import numpy as np, pytest
from PIL import Image
from browser import CHROMIUM, ARGS   # tests/browser.py

MAX_PIXELS = 1_000_000                                                # the server's pixel budget in these tests (DIFFEDIT_MAX_PIXELS)


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

# The server runs under an audit hook that logs every file it opens inside the folders the tests watch (a private folder beside the upload
# folder, /etc/shadow and /etc/passwd), so a test can say "this payload was refused and no file outside the upload folder was opened", not only "it was refused".
AUDIT = """
import os, sys, runpy
log = open(os.environ['DIFFEDIT_TEST_AUDIT'], 'a', buffering=1)
watch = [os.path.realpath(w) for w in os.environ['DIFFEDIT_TEST_WATCH'].split(os.pathsep)]
def hook(event, args):
    if event == 'open' and isinstance(args[0], (str, bytes)):
        p = os.path.realpath(os.fsdecode(args[0]))
        if any(p == w or p.startswith(w + os.sep) for w in watch): log.write(p + '\\n')
sys.addaudithook(hook)
sys.argv = ['diffedit-app'] + sys.argv[1:]
runpy.run_module('diffedit.app', run_name='__main__', alter_sys=True)
"""

class App:
    "The running app: its URL, process, upload folder, the private folder beside it and the log of watched files it opened."
    def __init__(self, **kw): self.__dict__.update(kw)
    def opened(self): return self.audit.read_text().split()
    def rss_peak_mb(self): return int(next(l for l in open(f'/proc/{self.proc.pid}/status') if l.startswith('VmHWM')).split()[1])//1024

@pytest.fixture(scope='module')
def app(tmp_path_factory):
    "`diffedit-app` started on a free localhost port, in its own folder (uploads/, a private/ folder, the audit log); once it answers."
    root = tmp_path_factory.mktemp('app'); port = _free_port(); log = root/'app.log'
    uploads, private = root/'uploads', root/'private'; uploads.mkdir(); private.mkdir()
    from diffedit.scenes import make_scene
    make_scene(['dog', 'flower'], 'snow', seed=0).image.save(private/'private.png'); (private/'notes.txt').write_text('private')
    os.symlink(private/'private.png', uploads/'link.png'); os.mkfifo(uploads/'pipe.png')
    (root/'audit.log').write_text('')
    env = {'OMP_NUM_THREADS': '1', **os.environ, 'HF_HUB_OFFLINE': '1', 'DIFFEDIT_MODEL': '', 'GRADIO_ANALYTICS_ENABLED': 'False', 'NO_PROXY': '127.0.0.1,localhost',
           'GRADIO_TEMP_DIR': str(uploads), 'DIFFEDIT_MAX_PIXELS': str(MAX_PIXELS), 'DIFFEDIT_MAX_FILE_SIZE': '2mb',
           'DIFFEDIT_TEST_AUDIT': str(root/'audit.log'), 'DIFFEDIT_TEST_WATCH': os.pathsep.join([str(private), str(uploads/'pipe.png'), '/etc/shadow', '/etc/passwd'])}
    with open(log, 'w') as f:
        p = subprocess.Popen([sys.executable, '-c', AUDIT, '--port', str(port), '--device', 'cpu'], stdout=f, stderr=subprocess.STDOUT, env=env, cwd=root)
    url = f'http://127.0.0.1:{port}/'
    try:
        for _ in range(300):
            if p.poll() is not None: pytest.fail(f"the app exited with code {p.returncode}:\n{log.read_text()}")
            try:
                urllib.request.urlopen(url, timeout=2); break
            except OSError: time.sleep(1)
        else: pytest.fail(f"the app did not answer at {url} in 300 s:\n{log.read_text()}")
        yield App(url=url, proc=p, root=root, uploads=uploads, private=private, audit=root/'audit.log', log=log, port=port)
    finally:
        p.terminate()
        try: p.wait(20)
        except subprocess.TimeoutExpired: p.kill()

@pytest.fixture(scope='module')
def app_url(app): return app.url

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

META = {'_type': 'gradio.FileData'}

def _upload(url, data, name='image.png'):
    "Upload the bytes `data` to the app; the file reference its API takes."
    b = 'diffedit-test-boundary'
    body = (f'--{b}\r\nContent-Disposition: form-data; name="files"; filename="{name}"\r\n'
            'Content-Type: application/octet-stream\r\n\r\n').encode() + data + f'\r\n--{b}--\r\n'.encode()
    req = urllib.request.Request(url+'gradio_api/upload', data=body, headers={'Content-Type': f'multipart/form-data; boundary={b}'})
    return {'path': json.load(urllib.request.urlopen(req, timeout=60))[0], 'meta': dict(META)}

def _call(url, data, timeout=600):
    "POST `data` (the button's inputs) to the `edit` endpoint; ('complete', outputs) or ('error', message)."
    body = json.dumps({'data': data}).encode()                        # NaN and Infinity go as JavaScript writes them
    req = urllib.request.Request(url+'gradio_api/call/edit', data=body, headers={'Content-Type': 'application/json'})
    eid = json.load(urllib.request.urlopen(req, timeout=60))['event_id']
    lines, end = [], time.time() + timeout                           # heartbeats keep the stream open: the deadline is ours
    with urllib.request.urlopen(url+f'gradio_api/call/edit/{eid}', timeout=timeout) as r:
        for line in r:
            lines.append(line.decode().rstrip('\n'))
            if lines[-1].startswith('event: ') and lines[-1][7:] in ('complete', 'error'): lines.append(r.readline().decode().rstrip('\n')); break
            if time.time() > end: pytest.fail(f"no answer from the app in {timeout} s")
    event = [l[7:] for l in lines if l.startswith('event: ')][-1]
    data = json.loads([l[6:] for l in lines if l.startswith('data: ')][-1])
    return event, (data.get('error') if event == 'error' and isinstance(data, dict) else data)

def _png(im):
    buf = io.BytesIO(); im.save(buf, 'PNG'); return buf.getvalue()

@pytest.fixture(scope='module')
def scene_file(app_url):
    from diffedit.scenes import make_scene
    return _upload(app_url, _png(make_scene(['horse', 'tree'], 'grass', seed=1).image))

REF, QUERY = 'a horse and a tree on grass', 'a zebra and a tree on grass'
GOOD = dict(ref=REF, query=QUERY, r=0.7, n=2, threshold=0.5, refine=2., guidance_scale=7.5, word_weight=1.5, steps=5, seed=0, keep_background=True,
            guide='cfg', schedule='constant')
ORDER = ['ref', 'query', 'r', 'n', 'threshold', 'guidance_scale', 'guide', 'schedule', 'steps', 'seed', 'keep_background', 'refine', 'word_weight']   # the API's order

def _inputs(image, **kw):
    d = {**GOOD, **kw}
    return [image] + [d[k] for k in ORDER]

API_BAD = {                                                           # field changed: words the message must hold
    'nan n':            (dict(n=math.nan), ['n', 'whole number']),
    'nan steps':        (dict(steps=math.nan), ['steps', 'whole number']),
    'fractional steps': (dict(steps=5.5), ['steps', 'whole number']),
    'huge steps':       (dict(steps=1e9), ['steps', 'from 5 to 100']),
    'nan seed':         (dict(seed=math.nan), ['seed', 'whole number']),
    'huge seed':        (dict(seed=1e30), ['seed', '2**64-1']),
    'negative seed':    (dict(seed=-1), ['seed', '2**64-1']),
    'fractional seed':  (dict(seed=1.5), ['seed', 'whole number']),
    'string seed':      (dict(seed='7'), ['seed', 'whole number']),
    'nan guidance':     (dict(guidance_scale=math.nan), ['guidance_scale', 'finite']),
    'inf guidance':     (dict(guidance_scale=math.inf), ['guidance_scale', 'finite']),
    'huge guidance':    (dict(guidance_scale=1e6), ['guidance_scale', 'from 0 to 15']),
    'nan r':            (dict(r=math.nan), ['r', 'finite']),
    'string r':         (dict(r='0.7'), ['r', 'number']),
    'list r':           (dict(r=[0.7]), ['r', 'number']),
    'null threshold':   (dict(threshold=None), ['threshold', 'number']),
    'negative n':       (dict(n=-3), ['n', 'from 1 to 20']),
    'string n':         (dict(n='4'), ['n', 'whole number']),
    'bool n':           (dict(n=True), ['n', 'whole number']),
    'negative refine':  (dict(refine=-1), ['refine', 'from 0 to 8']),
    'nan refine':       (dict(refine=math.nan), ['refine', 'finite']),
    'word weight 0':    (dict(word_weight=0), ['word_weight', '(0, 10]']),
    'nan word weight':  (dict(word_weight=math.nan), ['word_weight', 'finite']),
    'string keep':      (dict(keep_background='false'), ['keep_background', 'True or False']),
    'number keep':      (dict(keep_background=0), ['keep_background', 'True or False']),
    'null keep':        (dict(keep_background=None), ['keep_background', 'True or False']),
    'empty query':      (dict(query=''), ['prompt is empty']),
    'null query':       (dict(query=None), ['query', 'text']),
    'list query':       (dict(query=['a zebra']), ['query', 'text']),
    'number ref':       (dict(ref=5), ['reference', 'text']),
    'unknown guide':    (dict(guide='bogus'), ['guide', 'bogus']),
    'null guide':       (dict(guide=None), ['guide', 'string']),
    'number schedule':  (dict(schedule=1), ['schedule', 'string']),
}

@pytest.mark.parametrize('name', API_BAD)
def test_api_bad_input(name, app_url, scene_file):
    change, words = API_BAD[name]
    event, msg = _call(app_url, _inputs(scene_file, **change))
    assert event == 'error' and msg, (event, msg)
    assert all(w.lower() in str(msg).lower() for w in words), msg

@pytest.mark.parametrize('n', [0, 1, 3, 15])
def test_api_wrong_count(n, app_url, scene_file):
    "Too few or too many inputs: a message saying how many and in what order, not `{'error': null}`."
    data = (_inputs(scene_file) + [0, 0])[:n]
    event, msg = _call(app_url, data)
    assert event == 'error' and msg and '14 inputs' in msg and 'word_weight' in msg, (event, msg)

# Only files Gradio stored from an upload: every other shape of the image input is refused with a message, and the server opens no
# file outside its upload folder (the audit log of the private folder, /etc and the FIFO stays empty).

def _forged(a, up):
    "Image payloads that name a file the client did not upload (or not a file at all), by name."
    priv, png = a.private/'private.png', _png(__import__('PIL.Image').Image.new('RGB', (8, 8)))
    data = 'data:image/png;base64,' + base64.b64encode(png).decode()
    hashdir = os.path.dirname(up['path'])
    return {
        'path, no meta':           {'path': str(priv)},
        'path with meta':          {'path': str(priv), 'meta': META},
        '/etc/shadow, no meta':    {'path': '/etc/shadow'},
        '/etc/passwd with meta':   {'path': '/etc/passwd', 'meta': META},
        'relative path':           {'path': 'private/private.png'},
        'relative path with meta': {'path': 'private/private.png', 'meta': META},
        'file: url as path':       {'path': f'file://{priv}', 'meta': META},
        '.. out of an upload':     {'path': f'{hashdir}/../../private/private.png', 'meta': META},
        '.. no meta':              {'path': f'{hashdir}/../../private/private.png'},
        '.. staying inside':       {'path': f'{hashdir}/../{os.path.basename(hashdir)}/{os.path.basename(up["path"])}', 'meta': META},
        'symlink in uploads':      {'path': str(a.uploads/'link.png'), 'meta': META},
        'symlink, no meta':        {'path': str(a.uploads/'link.png')},
        'fifo in uploads':         {'path': str(a.uploads/'pipe.png'), 'meta': META},
        'the upload folder':       {'path': str(a.uploads), 'meta': META},
        'missing upload':          {'path': str(a.uploads/'nothing.png'), 'meta': META},
        'nul byte':                {'path': up['path'] + '\x00.png', 'meta': META},
        'path not a string':       {'path': 5, 'meta': META},
        'wrong meta':              {'path': up['path'], 'meta': {'_type': 'gradio.ImageData'}},
        'http url as path':        {'path': f'http://127.0.0.1:{a.port}/gradio_api/file={priv}', 'meta': META},
        'url, no path':            {'url': f'http://127.0.0.1:{a.port}/gradio_api/file={priv}', 'meta': META},
        'foreign url on upload':   {**up, 'url': 'http://169.254.169.254/latest/meta-data'},
        'data url, no meta':       {'url': data},
        'data url with meta':      {'url': data, 'meta': META},
        'bare string path':        str(priv),
        'list of uploads':         [up],
        'number':                  42,
        'empty dict':              {},
    }

FORGED = list(_forged(type('A', (), dict(private=Path('p'), uploads=Path('u'), port=0))(), {'path': '/u/h/x.png'}))

@pytest.mark.parametrize('name', FORGED)
def test_api_only_uploads(name, app, scene_file):
    payload = _forged(app, scene_file)[name]
    event, msg = _call(app.url, _inputs(payload), timeout=120)
    assert event == 'error' and msg and 'upload' in msg.lower(), (event, msg)
    assert app.opened() == [], app.opened()

def test_api_not_an_image(app_url):
    event, msg = _call(app_url, _inputs(_upload(app_url, b'not an image at all', 'notes.png')))
    assert event == 'error' and 'not an image' in str(msg), (event, msg)

def test_api_svg_upload(app_url):
    svg = b'<svg xmlns="http://www.w3.org/2000/svg" width="8" height="8"><image href="file:///etc/passwd"/></svg>'
    event, msg = _call(app_url, _inputs(_upload(app_url, svg, 'x.svg')))
    assert event == 'error' and 'not an image' in str(msg), (event, msg)

# Sizes: an upload over the file-size limit is refused by the upload itself; an image over the pixel budget before it is decoded.

def _bomb(w, h):
    "A PNG of w x h black pixels, compressed row by row (12000 x 12000 is about 420 KB), never held decoded."
    import struct, zlib
    chunk = lambda t, d: struct.pack('>I', len(d)) + t + d + struct.pack('>I', zlib.crc32(t + d))
    z, row, idat = zlib.compressobj(9), b'\0' * (1 + 3*w), []
    for _ in range(h): idat.append(z.compress(row))
    idat.append(z.flush())
    return b'\x89PNG\r\n\x1a\n' + chunk(b'IHDR', struct.pack('>IIBBBBB', w, h, 8, 2, 0, 0, 0)) + chunk(b'IDAT', b''.join(idat)) + chunk(b'IEND', b'')

def test_api_pixel_budget(app):
    "An image over the budget is refused from its header, naming the budget and how to raise it; the server's memory does not move."
    ref = _upload(app.url, _bomb(1200, 1000), 'big.png')
    before = app.rss_peak_mb()
    event, msg = _call(app.url, _inputs(ref))
    assert event == 'error' and 'budget of 1 Mpx' in msg and 'DIFFEDIT_MAX_PIXELS=1200000' in msg and '1200x1000' in msg, (event, msg)
    assert app.rss_peak_mb() - before < 50, (before, app.rss_peak_mb())

def test_api_file_size(app_url):
    "An upload over the app's `max_file_size` (2 MB in these tests) is refused by the upload route, with Gradio's message."
    with pytest.raises(urllib.error.HTTPError) as e: _upload(app_url, os.urandom(3*2**20), 'big.png')
    assert e.value.code == 413, e.value.code

def test_api_edit_after_errors(app_url, scene_file):
    "After all the bad input above, the app still edits."
    event, out = _call(app_url, _inputs(scene_file))
    assert event == 'complete' and len(out) == 3, (event, out)

def test_api_16bit_upload(app_url):
    "A 16-bit greyscale PNG is scaled to 8 bits, not clipped to white: mid-grey stays mid-grey."
    event, out = _call(app_url, _inputs(_upload(app_url, _png(Image.fromarray(np.full((64, 64), 32768, np.uint16))), 'grey16.png')))
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
        event, out = _call(app_url, _inputs(scene_file, keep_background=keep))
        assert event == 'complete', (event, out)
        b = Image.fromarray(_fetch(out[2])).resize((64, 64), Image.NEAREST)
        same[keep] = (np.asarray(b) == a).all(-1).mean()
    assert same[True] > 0.3 > same[False], same

# Warnings: the queue's event stream (what the page reads) carries them; the simple /call API does not.

def _queue(url, data):
    "Run the `edit` event through the queue, as the page does: (the final message, the warnings shown on the page)."
    cfg = json.load(urllib.request.urlopen(url+'config', timeout=60))
    fn = next(d['id'] for d in cfg['dependencies'] if d.get('api_name') == 'edit')
    sh = 'diffedit-test-' + str(time.time_ns())
    body = json.dumps({'data': data, 'fn_index': fn, 'session_hash': sh, 'event_data': None, 'trigger_id': None}).encode()
    urllib.request.urlopen(urllib.request.Request(url+'gradio_api/queue/join', data=body, headers={'Content-Type': 'application/json'}), timeout=60)
    warns = []
    with urllib.request.urlopen(url+f'gradio_api/queue/data?session_hash={sh}', timeout=600) as r:
        for line in r:
            if not line.startswith(b'data: '): continue
            m = json.loads(line[6:])
            if m.get('msg') == 'log' and m.get('level') == 'warning': warns.append(m.get('log'))
            if m.get('msg') == 'process_completed': return m, warns

def test_api_warns(app_url, scene_file):
    "A query that changes nothing still edits, but the page says the mask is empty and the result is the input."
    done, warns = _queue(app_url, _inputs(scene_file, query=REF))
    assert done['success'], done
    assert any('mask is empty' in w for w in warns), warns
