"The documentation site: built from the notebooks by `scripts/docs.py`, every link checked, one page looked at in headless Chromium."
import functools, http.server, importlib.util, os, re, subprocess, sys, threading
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urlsplit, unquote
import pytest
from browser import CHROMIUM, ARGS   # tests/browser.py

ROOT = Path(__file__).resolve().parent.parent

def _missing():
    for m, why in [('pypandoc', "pandoc is not installed (pip install -e '.[dev]')"), ('yaml', "pyyaml is not installed")]:
        if importlib.util.find_spec(m) is None: return why

def _no_browser():
    if importlib.util.find_spec('playwright') is None: return "playwright is not installed (pip install playwright; the browser is Debian's chromium)"
    if not Path(CHROMIUM).exists(): return f"no Chromium at {CHROMIUM} (apt-get install chromium)"

pytestmark = pytest.mark.skipif(bool(_missing()), reason=_missing() or '')

class Refs(HTMLParser):
    "The links, images and sidebar entries of one HTML page."
    def __init__(self):
        super().__init__(); self.hrefs, self.srcs, self.ids, self.sidebar, self._nav = [], [], set(), [], 0
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if 'id' in a: self.ids.add(a['id'])
        if tag == 'nav' and a.get('class') == 'sidebar': self._nav += 1
        if tag == 'a' and 'href' in a:
            self.hrefs.append(a['href'])
            if self._nav: self.sidebar.append(a['href'])
        if tag == 'img' and 'src' in a: self.srcs.append(a['src'])
    def handle_endtag(self, tag):
        if tag == 'nav' and self._nav: self._nav -= 1

@pytest.fixture(scope='module')
def site(tmp_path_factory):
    out = tmp_path_factory.mktemp('site')/'_docs'
    env = {'OMP_NUM_THREADS': '1', **os.environ, 'HF_HUB_OFFLINE': '1'}
    r = subprocess.run([sys.executable, str(ROOT/'scripts'/'docs.py'), '--out', str(out)], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=1200)
    assert r.returncode == 0, f"scripts/docs.py failed:\n{r.stdout[-3000:]}\n{r.stderr[-5000:]}"
    return out

def _parse(page):
    p = Refs(); p.feed(page.read_text()); return p

def test_every_notebook_is_a_page(site):
    nbs = sorted(p.name for p in (ROOT/'nbs').glob('*.ipynb'))
    pages = _parse(site/'index.html').sidebar
    assert pages[0] == 'index.html'
    # one sidebar entry per notebook (and the site title), each an HTML page of the site: no images, YAML or notebooks
    assert len(pages) == len(nbs) + 1, pages
    assert all(re.fullmatch(r'[\w-]+\.html', h) and (site/h).is_file() for h in pages), pages

def test_no_broken_links_or_images(site):
    pages = sorted(site.glob('*.html')); broken = []
    ids = {p.name: _parse(p).ids for p in pages}
    for p in pages:
        refs = _parse(p)
        for ref in refs.hrefs + refs.srcs:
            u = urlsplit(ref)
            if u.scheme or ref.startswith('//'): continue          # links to other sites (diffusers' docs, papers, GitHub)
            target = site/unquote(u.path) if u.path else p
            if not target.is_file(): broken.append(f"{p.name}: {ref}")
            elif u.fragment and target.suffix == '.html' and u.fragment not in ids[target.name]: broken.append(f"{p.name}: {ref} (no such anchor)")
    assert not broken, '\n'.join(broken)

def test_api_docs_rendered(site):
    "show_doc output is on the pages as HTML, not as raw markdown or a Python repr."
    mask = (site/'mask.html').read_text()
    assert 'id="get_mask"' in mask and '<h3' in mask
    assert '{target=' not in mask and '&lt;IPython' not in mask
    assert len(list(site.glob('mask_files/*.png'))) >= 3   # the notebook's figures

def test_search_index(site):
    "search.json has sections of every page, with links that resolve."
    import json
    idx = json.loads((site/'search.json').read_text())
    pages = {e['href'].split('#')[0] for e in idx}
    assert pages == {p.name for p in site.glob('*.html')}
    api = [e for e in idx if e['href'] == 'mask.html#get_mask']
    assert api and api[0]['title'] == 'get_mask' and 'binary mask' in api[0]['text']

@pytest.mark.skipif(bool(_no_browser()), reason=_no_browser() or '')
def test_page_in_chromium(site, tmp_path):
    from playwright.sync_api import sync_playwright
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(site))
    handler.log_message = lambda *a: None
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    url = f'http://127.0.0.1:{srv.server_address[1]}/'
    try:
        with sync_playwright() as pw:
            b = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            pg = b.new_page(viewport={'width': 1400, 'height': 1000})
            errors, failed = [], []
            pg.on('console', lambda m: m.type == 'error' and errors.append(m.text))
            pg.on('requestfailed', lambda r: failed.append(r.url))
            pg.on('response', lambda r: r.status >= 400 and failed.append(f"{r.status} {r.url}"))
            pg.goto(url + 'mask.html', wait_until='load')
            assert pg.title().startswith('DiffEdit step 1: the mask')
            # every image on the page loaded and has a size
            sizes = pg.eval_on_selector_all('main img', 'ims => ims.map(i => [i.complete, i.naturalWidth])')
            assert sizes and all(ok and w > 0 for ok, w in sizes), sizes
            # the sidebar is visible, marks this page, and its links lead to pages that load
            assert pg.locator('.sidebar a.active').inner_text() == 'DiffEdit step 1: the mask'
            pg.locator('.sidebar a', has_text='DiffEdit step 2').click(); pg.wait_for_load_state()
            assert pg.url.endswith('/encode.html') and pg.locator('h1.title').inner_text().startswith('DiffEdit step 2')
            pg.go_back(); pg.screenshot(path=str(tmp_path/'mask.png'))
            # search: typing a function's name lists its section; the result leads there
            pg.fill('#search', 'get_mask')
            hit = pg.locator('#search-results a[href="mask.html#get_mask"]')
            hit.wait_for(); hit.click(); pg.wait_for_load_state()
            assert pg.url.endswith('/mask.html#get_mask')
            pg.fill('#search', 'zzzz-nothing-like-this'); pg.locator('#search-results li.none').wait_for()
            b.close()
        assert not failed and not errors, (failed, errors)
    finally: srv.shutdown()
