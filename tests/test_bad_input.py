"""Bad input through the `diffedit` command: a one-line error (before the model loads when it can be known then), a stated conversion,
or a safe result; never a traceback, a silent wrong picture or a lost file."""
import os, threading
import numpy as np, pytest
from PIL import Image
from test_cli import cli, assert_user_error, FAST, ENV

REF, QUERY = 'a horse and a tree on grass', 'a zebra and a tree on grass'

@pytest.fixture
def files(tmp_path):
    "A scene to edit, a text file and a copy of the scene's bytes, in a fresh folder."
    from diffedit.scenes import make_scene
    make_scene(['horse', 'tree'], 'grass', seed=1).image.save(tmp_path/'scene.png')
    (tmp_path/'notes.txt').write_text('not an image')
    return dict(tmp=tmp_path, scene=tmp_path/'scene.png', notes=tmp_path/'notes.txt', data=(tmp_path/'scene.png').read_bytes())

def _args(args, files): return [a.format(**files) for a in args]

EDIT = ['edit', '{scene}', '--ref', REF, '--query', QUERY]
# Known before the model loads: each is refused with a message, and the model is never loaded (no "Loading" line).
BEFORE_LOAD = {
    'nan guidance':      (EDIT + ['-o', '{tmp}/o.png', '-g', 'nan'], ['--guidance-scale', 'finite']),
    'inf guidance':      (EDIT + ['-o', '{tmp}/o.png', '-g', 'inf'], ['--guidance-scale', 'finite']),
    'huge guidance':     (EDIT + ['-o', '{tmp}/o.png', '-g', '1e30'], ['--guidance-scale', '[0, 100]']),
    'negative guidance': (EDIT + ['-o', '{tmp}/o.png', '-g', '-3'], ['--guidance-scale', '[0, 100]']),
    'nan decay-to':      (EDIT + ['-o', '{tmp}/o.png', '--decay-to', 'nan'], ['--decay-to', 'finite']),
    'nan decay-start':   (EDIT + ['-o', '{tmp}/o.png', '--decay-start', 'nan'], ['--decay-start', 'finite']),
    'decay-start 1':     (EDIT + ['-o', '{tmp}/o.png', '--decay-start', '1'], ['--decay-start', '[0, 1)']),
    'nan r':             (EDIT + ['-o', '{tmp}/o.png', '--r', 'nan'], ['--r', 'finite']),
    'threshold 0':       (EDIT + ['-o', '{tmp}/o.png', '--threshold', '0'], ['--threshold', '(0, 1]']),
    'negative refine':   (EDIT + ['-o', '{tmp}/o.png', '--refine', '-1'], ['--refine', 'from 0']),
    'nan refine':        (EDIT + ['-o', '{tmp}/o.png', '--refine', 'nan'], ['--refine', 'finite']),
    'huge refine':       (EDIT + ['-o', '{tmp}/o.png', '--refine', '1e30'], ['--refine', '32']),
    'word weight 0':     (EDIT + ['-o', '{tmp}/o.png', '--word-weight', '0'], ['--word-weight', 'positive']),
    'negative word weight': (EDIT + ['-o', '{tmp}/o.png', '--word-weight', '-1.5'], ['--word-weight', 'positive']),
    'nan word weight':   (EDIT + ['-o', '{tmp}/o.png', '--word-weight', 'nan'], ['--word-weight', 'finite']),
    'inf word weight':   (EDIT + ['-o', '{tmp}/o.png', '--word-weight', 'inf'], ['--word-weight', 'finite']),
    '65-bit seed':       (EDIT + ['-o', '{tmp}/o.png', '--seed', str(2**64)], ['--seed', '2**64-1']),
    'negative seed':     (EDIT + ['-o', '{tmp}/o.png', '--seed', '-1'], ['--seed', '2**64-1']),
    'edit size 4096':    (EDIT + ['-o', '{tmp}/o.png', '--size', '4096'], ['--size', '2048']),
    'too many steps':    (EDIT + ['-o', '{tmp}/o.png', '--steps', '5000'], ['--steps', '1000']),
    'empty query':       (['edit', '{scene}', '--ref', REF, '--query', ' ', '-o', '{tmp}/o.png'], ['prompt is empty']),
    'outputs one file':  (EDIT + ['-o', '{tmp}/x.png', '--mask-out', '{tmp}/sub/../x.png'], ['same file']),
    'outputs abs/rel':   (EDIT + ['-o', '{tmp}/x.png', '--soft-out', '{tmp}/./x.png'], ['same file']),
    'mask-out = input':  (EDIT + ['-o', '{tmp}/o.png', '--mask-out', '{scene}'], ['input', '--overwrite-input']),
    '-o = input':        (EDIT + ['-o', '{scene}'], ['input', '--overwrite-input']),
    '-o = input, bad mask-out': (EDIT + ['-o', '{scene}', '--mask-out', '{notes}/m.png', '--overwrite-input'], ['cannot write', 'notes.txt']),
    'folder is a file':  (EDIT + ['-o', '{notes}/sub/o.png'], ['cannot write', 'notes.txt']),
    'output is a folder': (EDIT + ['-o', '{tmp}'], ['.png']),
    'output is a folder.png': (EDIT + ['-o', '{tmp}/d.png/'], ['folder']),
    'sample nan':        (['sample', 'a dog', '-o', '{tmp}/g.png', '-g', 'nan'], ['finite']),
    'sample bad folder': (['sample', 'a dog', '-o', '{notes}/g.png'], ['cannot write']),
    'scene size 100000': (['scene', 'horse', '-o', '{tmp}/s.png', '--size', '100000'], ['--size', '2048']),
    'scene 65-bit seed': (['scene', 'horse', '-o', '{tmp}/s.png', '--seed', str(2**64)], ['--seed']),
    'demo into a file':  (['demo', '-o', '{notes}'], ['cannot write', 'notes.txt']),
    'a billion draws':   (EDIT + ['-o', '{tmp}/o.png', '--n', '1000000000'], ['--n', '100']),
    'no command':        ([], ['give a command']),
    'sample huge scale': (['sample', 'a dog', '-o', '{tmp}/g.png', '--scale', '100000'], ['--scale', '1 to 16']),
}

@pytest.mark.parametrize('name', BEFORE_LOAD)
def test_before_load(name, files):
    args, words = BEFORE_LOAD[name]
    if name == 'output is a folder.png': (files['tmp']/'d.png').mkdir()
    p = cli(*_args(args, files))
    assert_user_error(p, *words)
    assert 'Loading' not in p.stderr, p.stderr                       # refused before the model loads
    assert files['scene'].read_bytes() == files['data']               # the input is never touched
    assert not any(files['tmp'].glob('o.png')) and not any(files['tmp'].glob('x.png'))

def test_threshold_help_agrees():
    p = cli('edit', '--help')
    assert '(0, 1]' in ' '.join(p.stdout[p.stdout.rindex('--threshold'):].split()[:16]), p.stdout

# Known only once the model loads: one line, exit 2, no traceback.
AT_LOAD = {
    'device bogus':   (['--device', 'bogus'], {}, ['bogus']),
    'model is a file': ([], {'DIFFEDIT_MODEL': '{notes}'}, ['notes.txt', 'file']),
    'not a model folder': (['--model', '{tmp}'], {}, ['model_index.json']),
}

@pytest.mark.parametrize('name', AT_LOAD)
def test_at_load(name, files):
    args, env, words = AT_LOAD[name]
    env = {k: v.format(**files) for k, v in env.items()}
    assert_user_error(cli(*_args(EDIT + ['-o', '{tmp}/o.png', *args, '-q'], files), env=env), *words)

def test_cuda_without_cuda(files):
    import torch
    if torch.cuda.is_available(): pytest.skip("this machine has CUDA")
    assert_user_error(cli(*_args(EDIT + ['-o', '{tmp}/o.png', '--device', 'cuda', '-q'], files)), 'cuda')

def test_links_to_the_input(files):
    t = files['tmp']; os.link(files['scene'], t/'hard.png'); os.symlink(files['scene'], t/'soft.png')
    for link in ('hard.png', 'soft.png'):
        assert_user_error(cli(*_args(EDIT + ['-o', f'{{tmp}}/{link}'], files)), 'input', '--overwrite-input')
    assert files['scene'].read_bytes() == files['data']

def test_overwrite_input(files):
    p = cli(*_args(EDIT + ['-o', '{scene}', '--overwrite-input', *FAST], files))
    assert p.returncode == 0, p.stderr
    assert files['scene'].read_bytes() != files['data'] and Image.open(files['scene']).size == (64, 64)
    assert [f.name for f in files['tmp'].iterdir() if f.name.startswith('.')] == []   # no temporary file left

def test_exif_and_resample(files):
    "A sideways photo with an EXIF orientation is edited upright; a larger image is worked small, and the command says so."
    im = Image.open(files['scene']).rotate(90, expand=True).resize((128, 128))
    im = im.crop((0, 0, 128, 64))                                     # 128x64 pixels, displayed 64x128
    exif = Image.Exif(); exif[0x0112] = 6                              # orientation 6: rotate 90 degrees clockwise to show
    im.save(files['tmp']/'photo.jpg', exif=exif)
    p = cli('edit', files['tmp']/'photo.jpg', '--ref', REF, '--query', QUERY, '-o', files['tmp']/'out.png', *FAST)
    assert p.returncode == 0, p.stderr
    assert Image.open(files['tmp']/'out.png').size == (64, 128)
    assert 'resampled' in p.stderr and 'warning' in p.stderr, p.stderr
    a, b = np.asarray(Image.open(files['tmp']/'photo.jpg').transpose(Image.ROTATE_270)), np.asarray(Image.open(files['tmp']/'out.png'))
    assert (a == b).all(-1).mean() > 0.2                                # outside the mask, the photo's own pixels at its own size

def test_open_image_exif(files):
    from diffedit.cli import open_image
    im = Image.new('RGB', (40, 20), 'red'); exif = Image.Exif(); exif[0x0112] = 6
    im.save(files['tmp']/'side.jpg', exif=exif)
    assert open_image(files['tmp']/'side.jpg').size == (20, 40)

def test_simultaneous_saves(tmp_path):
    "Two saves to one path at once leave one whole file, never a mix of both; no temporary file stays behind."
    from diffedit.cli import save
    rng = np.random.default_rng(0)
    ims = [Image.fromarray(rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)) for _ in range(2)]
    want = [np.asarray(i) for i in ims]
    for _ in range(5):
        go = threading.Barrier(2)
        def f(im): go.wait(); save(im, tmp_path/'o.png')
        ts = [threading.Thread(target=f, args=(im,)) for im in ims]
        for t in ts: t.start()
        for t in ts: t.join()
        got = np.asarray(Image.open(tmp_path/'o.png'))
        assert any((got == w).all() for w in want)
    assert [f.name for f in tmp_path.iterdir()] == ['o.png']

def test_save_keeps_permissions(tmp_path):
    from diffedit.cli import save
    save(Image.new('RGB', (4, 4)), tmp_path/'a.png')
    assert (tmp_path/'a.png').stat().st_mode & 0o777 == 0o666 & ~_umask()

def _umask():
    u = os.umask(0); os.umask(u); return u

def test_app_port():
    "diffedit-app refuses a port that cannot exist, in one line, before Gradio or the model load."
    import subprocess, sys
    p = subprocess.run([sys.executable, '-m', 'diffedit.app', '--port', '99999'], capture_output=True, text=True, env=ENV, timeout=120)
    assert p.returncode == 2 and 'Traceback' not in p.stderr, p.stderr
    assert '--port' in p.stderr and '65535' in p.stderr
