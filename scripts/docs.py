#!/usr/bin/env python
"""Build the documentation site in `_docs/` from the notebooks, without Quarto.

nbdev prepares the pages as it does for Quarto (`nbdev-proc-nbs`: front matter from each notebook's title, hidden cells
removed, `show_doc` rendered, backticked names linked); pandoc (the `pypandoc-binary` wheel, part of the `dev` extra)
renders each prepared notebook to HTML with the sidebar from `nbs/sidebar.yml`, and writes the figures beside it;
`search.json` and `docs.js` give the sidebar a search box over every section.
`.github/workflows/deploy.yaml` publishes this build; `tests/test_docs.py` checks it.

    python scripts/docs.py            # build _docs/ (about a minute on a CPU)
    python -m http.server -d _docs    # and look at it on http://localhost:8000
    python scripts/docs.py --readme   # README.md from nbs/index.ipynb
"""
import argparse, base64, html, json, os, re, shutil, subprocess, sys
from html.parser import HTMLParser
from pathlib import Path
import yaml

ROOT = Path(__file__).resolve().parent.parent
SITE_URL = 'https://diffedit.github.io/diffedit/'   # nbdev links names to the published site; the local site links locally
IMAGE_TYPES = {'image/png': 'png', 'image/gif': 'gif', 'image/jpeg': 'jpg', 'image/svg+xml': 'svg'}

def pandoc():
    "The pandoc binary from the `pypandoc-binary` wheel, else one on PATH."
    try:
        import pypandoc
        return pypandoc.get_pandoc_path()
    except (ImportError, OSError):
        if p := shutil.which('pandoc'): return p
    sys.exit("pandoc is missing: `pip install -e .[dev]` installs it (the pypandoc-binary wheel).")

def prepare(root, n_workers=2):
    "What `nbdev-proc-nbs` does, without its attempt to download and install Quarto: the prepared notebooks in `_proc/`."
    from nbdev.quarto import refresh_quarto_yml
    from nbdev.serve import proc_nbs
    cwd = os.getcwd(); os.chdir(root)            # nbdev reads its settings from the project in the working directory
    try: refresh_quarto_yml(); proc_nbs(n_workers=n_workers)
    finally: os.chdir(cwd)

def sidebar_entries(path):
    "The notebooks and sections listed in a Quarto sidebar file: [(section or None, notebook name)]."
    def walk(items, section=None):
        for it in items:
            if isinstance(it, str): yield section, it
            elif isinstance(it, dict) and 'contents' in it: yield from walk(it['contents'], it.get('section'))
            else: raise ValueError(f"{path}: cannot read sidebar entry {it!r}")
    return list(walk(yaml.safe_load(Path(path).read_text())['website']['sidebar']['contents']))

def front_matter(nb):
    "The YAML front matter nbdev puts in the first raw cell (title, description, output-file), and the other cells."
    c = nb['cells'][0]
    src = ''.join(c['source'])
    if c['cell_type'] == 'raw' and src.startswith('---'): return yaml.safe_load(src.strip().strip('-')) or {}, nb['cells'][1:]
    return {}, nb['cells']

def directives(src):
    "Quarto cell options (`#| key: value` lines at the top) and the source without them."
    opts, lines = {}, src.split('\n')
    while lines and lines[0].startswith('#|'):
        k, _, v = lines.pop(0)[2:].partition(':')
        opts[k.strip()] = v.strip().lower() if v.strip() else True
    return opts, '\n'.join(lines).strip('\n')

def fence(text, cls=''):
    "`text` as a fenced code block, with a fence longer than any run of backticks inside."
    n = max([3] + [len(m) + 1 for m in re.findall(r'`{3,}', text)])
    return f"{'`'*n}{cls}\n{text}\n{'`'*n}"

def join(x): return ''.join(x) if isinstance(x, list) else x

def output_md(o, media, stem, count):
    "One cell output as pandoc markdown; images are written to `media`."
    if o['output_type'] == 'stream': return fence(join(o['text']).rstrip('\n'), ' {.output}')
    if o['output_type'] == 'error': raise ValueError(f"{stem}: a cell output is an error ({o.get('ename')}); run the notebook again")
    d = o.get('data', {})
    for mime, ext in IMAGE_TYPES.items():
        if mime in d:
            name = f"{stem}_files/fig-{count}.{ext}"; (media/name).parent.mkdir(parents=True, exist_ok=True)
            data = join(d[mime])
            (media/name).write_bytes(data.encode() if ext == 'svg' else base64.b64decode(data))
            return f'<img src="{name}" class="output" alt="">'
    if 'text/markdown' in d: return join(d['text/markdown'])
    if 'text/html' in d: return fence(join(d['text/html']), '{=html}')
    if 'text/plain' in d: return fence(join(d['text/plain']).rstrip('\n'), ' {.output}')
    return ''

def cell_parts(cells):
    "What a page shows of `cells`, in order: ('markdown', text), ('code', source), ('output', output); cell options honoured."
    for c in cells:
        src = join(c['source'])
        if c['cell_type'] == 'markdown': yield 'markdown', src; continue
        if c['cell_type'] != 'code': continue
        opts, code = directives(src)
        if 'hide' in opts or opts.get('include') == 'false': continue
        if code and opts.get('echo') != 'false': yield 'code', code
        if opts.get('output') != 'false': yield from (('output', o) for o in c.get('outputs', []))

def page_md(cells, media, stem):
    "A prepared notebook's cells as one pandoc markdown document."
    out, count = [], 0
    for kind, x in cell_parts(cells):
        if kind == 'markdown': out.append(x)
        elif kind == 'code': out.append('::: {.cell-code}\n' + fence(x, ' {.python}') + '\n:::')
        else:
            count += 1
            if not (md := output_md(x, media, stem, count)): continue
            # rendered markdown (show_doc) stays at the top level so that its headings reach the page's contents
            out.append(md if 'text/markdown' in x.get('data', {}) else '::: {.cell-output}\n' + md + '\n:::')
    return '\n\n'.join(out) + '\n'

def local_links(md, pages):
    "Links to notebooks and to the published site made into links between the local pages."
    md = md.replace(SITE_URL, '')
    return re.sub(r'\]\(([\w.-]+)\.ipynb(#[^)]*)?\)', lambda m: f"]({pages.get(m[1] + '.ipynb', m[1] + '.html')}{m[2] or ''})", md)

def nav_html(entries, titles, pages, current):
    "The sidebar: the pages in `nbs/sidebar.yml` order, grouped under their sections."
    out, section = ['<nav class="sidebar"><a class="site-title" href="index.html">diffedit</a>',
                    '<input id="search" type="search" placeholder="Search" aria-label="Search the documentation" autocomplete="off">',
                    '<ul id="search-results" hidden></ul><ul>'], None
    for sec, nb in entries:
        if sec != section:
            if section is not None: out.append('</ul></li>')
            if sec is not None: out.append(f'<li class="section"><span>{html.escape(sec)}</span><ul>')
            section = sec
        cls = ' class="active"' if nb == current else ''
        label = 'Overview' if pages[nb] == 'index.html' else titles[nb]      # the site's name is already the sidebar's title
        title = re.sub(r'`([^`]+)`', r'<code>\1</code>', html.escape(label))
        out.append(f'<li><a{cls} href="{pages[nb]}">{title}</a></li>')
    if section is not None: out.append('</ul></li>')
    return '\n'.join(out + ['</ul></nav>'])

README_HEAD = "<!-- WARNING: THIS FILE WAS AUTOGENERATED FROM nbs/index.ipynb by `python scripts/docs.py --readme`! DO NOT EDIT! -->"

def readme(root=ROOT):
    "`README.md` from `nbs/index.ipynb`, as `nbdev-readme` makes it with Quarto: text, code and text outputs, links into `nbs/`."
    nb, out = json.loads((root/'nbs'/'index.ipynb').read_text()), [README_HEAD]
    for kind, x in cell_parts(nb['cells']):
        if kind == 'markdown': out.append(re.sub(r'\]\((?![a-z]+:|#|/)([^)]+)\)', r'](nbs/\1)', x))
        elif kind == 'code': out.append(fence(x, 'python'))
        else:                                   # text outputs indented; figures stay in the notebook and on the site
            d = x.get('data', {})
            text = join(x['text']) if x['output_type'] == 'stream' else '' if set(d) & set(IMAGE_TYPES) else join(d.get('text/plain', ''))
            if text.strip(): out.append('\n'.join('    ' + l for l in text.rstrip('\n').split('\n')))
    (root/'README.md').write_text('\n\n'.join(out) + '\n')
    return root/'README.md'

class Sections(HTMLParser):
    "The searchable sections of a built page: each heading in <main> (its id and text) and the text under it."
    def __init__(self):
        super().__init__(); self.sections, self._main, self._head, self._skip = [], False, None, 0
    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == 'main': self._main = True
        elif self._main and tag in ('h1', 'h2', 'h3') and a.get('id'):
            self._head = tag; self.sections.append(dict(id=a['id'], title='', text=''))
        elif tag in ('script', 'style', 'math'): self._skip += 1
    def handle_endtag(self, tag):
        if tag == 'main': self._main = False
        elif tag == self._head: self._head = None
        elif tag in ('script', 'style', 'math'): self._skip = max(0, self._skip - 1)
    def handle_data(self, data):
        if not self._main or self._skip: return
        if not self.sections: self.sections.append(dict(id='', title='', text=''))     # text before the first heading
        self.sections[-1]['title' if self._head else 'text'] += data

def search_index(out, pages, titles):
    "search.json: one entry per page section (page title, section title, link, the first words of its text)."
    entries = []
    for nb, page in pages.items():
        p = Sections(); p.feed((out/page).read_text())
        page_title = titles[nb].replace('`', '')
        for sec in p.sections:
            text = ' '.join(sec['text'].split())
            entries.append(dict(page=page_title, title=' '.join(sec['title'].split()) or page_title,
                                href=page + (f"#{sec['id']}" if sec['id'] else ''), text=text[:600]))
    (out/'search.json').write_text(json.dumps(entries, ensure_ascii=False))
    return len(entries)

def build(out=ROOT/'_docs', proc=True):
    nbs, procd = ROOT/'nbs', ROOT/'_proc'
    if proc: prepare(ROOT)
    entries = sidebar_entries(nbs/'sidebar.yml')
    missing = [nb for _, nb in entries if not (procd/nb).exists()]
    if missing: sys.exit(f"nbs/sidebar.yml lists notebooks that nbdev-proc-nbs did not prepare: {missing}")
    shutil.rmtree(out, ignore_errors=True); out.mkdir(parents=True)
    if (nbs/'images').exists(): shutil.copytree(nbs/'images', out/'images')
    for f in ('docs.css', 'docs.js'): shutil.copy(ROOT/'scripts'/f, out/f)
    fms = {nb: front_matter(json.loads((procd/nb).read_text())) for _, nb in entries}
    pages = {nb: fm.get('output-file', Path(nb).stem + '.html') for nb, (fm, _) in fms.items()}
    titles = {nb: str(fm.get('title', Path(nb).stem)) for nb, (fm, _) in fms.items()}
    exe = pandoc(); tmp = out/'.build'; tmp.mkdir()
    for _, nb in entries:
        (fm, cells), page = fms[nb], pages[nb]
        md = local_links(page_md(cells, out, Path(page).stem), pages)
        meta = {'title': titles[nb], 'pagetitle': f"{titles[nb]} – diffedit"}
        if fm.get('description'): meta['description'] = str(fm['description'])
        (tmp/'page.md').write_text('---\n' + yaml.safe_dump(meta, allow_unicode=True) + '---\n\n' + md)
        (tmp/'nav.html').write_text(nav_html(entries, titles, pages, nb))
        subprocess.run([exe, str(tmp/'page.md'), '-f', 'markdown', '-t', 'html5', '-s', '--toc', '--toc-depth=3', '--mathml',
                        '--template', str(ROOT/'scripts'/'docs.html'), '--include-before-body', str(tmp/'nav.html'),
                        '-o', str(out/page)], check=True)
        print(f"{nb} -> {out.name}/{page}")
    shutil.rmtree(tmp)
    print(f"search.json: {search_index(out, pages, titles)} sections")
    return out

if __name__ == '__main__':
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--out', type=Path, default=ROOT/'_docs', help="where the site goes (default: _docs)")
    ap.add_argument('--no-proc', action='store_true', help="use the notebooks already prepared in _proc/")
    ap.add_argument('--readme', action='store_true', help="write README.md from nbs/index.ipynb instead (no site)")
    a = ap.parse_args()
    print(readme()) if a.readme else build(a.out, proc=not a.no_proc)
