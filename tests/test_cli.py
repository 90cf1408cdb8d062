"The `diffedit` command, run as a user runs it: in a subprocess, on the embedded model."
import os, shutil, subprocess, sys
import numpy as np, pytest
from PIL import Image

# one torch thread: on a busy machine several threads per process wait on each other (far slower than one)
ENV = {'OMP_NUM_THREADS': '1', **os.environ, 'HF_HUB_OFFLINE': '1', 'DIFFEDIT_MODEL': ''}
ENV.pop('DIFFEDIT_DEBUG', None)
FAST = ['--steps', '10', '--n', '2', '-q']   # few steps: the tests check the plumbing, the notebooks the quality

def cli(*args, script=False, timeout=600, env=None):
    "Run `diffedit ARGS` (the installed script if `script`, else `python -m diffedit.cli`), with `env` added; returns the CompletedProcess."
    cmd = [shutil.which('diffedit')] if script else [sys.executable, '-m', 'diffedit.cli']
    return subprocess.run(cmd + [str(a) for a in args], capture_output=True, text=True, env={**ENV, **(env or {})}, timeout=timeout)

def assert_user_error(p, *words):
    "Exit code 2, no traceback, and a last stderr line that names the problem."
    assert p.returncode == 2, (p.returncode, p.stderr)
    assert 'Traceback' not in p.stderr, p.stderr
    last = p.stderr.strip().splitlines()[-1]
    assert 'error' in last and all(w.lower() in last.lower() for w in words), last

@pytest.fixture(scope='module')
def scene(tmp_path_factory):
    d = tmp_path_factory.mktemp('scene')
    p = cli('scene', 'horse', 'tree', '--background', 'grass', '--seed', '1', '-o', d/'scene.png')
    assert p.returncode == 0, p.stderr
    assert p.stdout.strip().splitlines()[-1] == 'a horse and a tree on grass'
    return d/'scene.png'

def test_help():
    p = cli('--help')
    assert p.returncode == 0 and all(c in p.stdout for c in ('edit', 'sample', 'scene', 'demo'))
    p = cli('edit', '--help')
    assert p.returncode == 0 and '--ref' in p.stdout and '--guide' in p.stdout and '--mask-out' in p.stdout

@pytest.mark.skipif(shutil.which('diffedit') is None, reason="the diffedit script is not installed (pip install -e .)")
def test_script_installed():
    p = cli('--help', script=True)
    assert p.returncode == 0 and 'DiffEdit' in p.stdout

def test_edit(scene, tmp_path):
    out, mask, soft = tmp_path/'out.png', tmp_path/'sub'/'mask.png', tmp_path/'soft.png'
    p = cli('edit', scene, '--ref', 'a horse and a tree on grass', '--query', 'a zebra and a tree on grass',
            '-o', out, '--mask-out', mask, '--soft-out', soft, '--guide', 'pred', '--schedule', 'cosine', '--decay-to', '1', *FAST)
    assert p.returncode == 0, p.stderr
    assert 'Traceback' not in p.stderr
    a, b = [np.asarray(Image.open(f).convert('RGB'), dtype=np.float32) for f in (scene, out)]
    m = np.asarray(Image.open(mask)) > 127
    assert a.shape == b.shape == (64, 64, 3) and Image.open(soft).size == (64, 64)
    assert 0 < m.mean() < 0.6                                          # the horse, not the whole scene
    assert np.abs(a-b)[m].mean() > 2*np.abs(a-b)[~m].mean()           # the edit happens inside the mask

def test_edit_with_mask_in(scene, tmp_path):
    m = np.zeros((64, 64), np.uint8); m[20:44, 20:44] = 255
    Image.fromarray(m).save(tmp_path/'m.png')
    p = cli('edit', scene, '--ref', 'a horse and a tree on grass', '--query', 'a zebra and a tree on grass',
            '-o', tmp_path/'out.jpg', '--mask', tmp_path/'m.png', '--mask-out', tmp_path/'mask.png', *FAST)
    assert p.returncode == 0, p.stderr
    assert (np.asarray(Image.open(tmp_path/'mask.png')) > 127).sum() == 24*24
    assert Image.open(tmp_path/'out.jpg').format == 'JPEG'

def test_keep_background(scene, tmp_path):
    "By default the edit is pasted into the input: outside the feathered mask every pixel is the input's; --no-keep-background is the decoded image."
    from diffedit.edit import feather_mask
    args = ['edit', scene, '--ref', 'a horse and a tree on grass', '--query', 'a zebra and a tree on grass', *FAST]
    assert cli(*args, '-o', tmp_path/'kept.png', '--mask-out', tmp_path/'mask.png').returncode == 0
    assert cli(*args, '-o', tmp_path/'plain.png', '--no-keep-background').returncode == 0
    a, kept, plain = [np.asarray(Image.open(f).convert('RGB')) for f in (scene, tmp_path/'kept.png', tmp_path/'plain.png')]
    bg = feather_mask(Image.open(tmp_path/'mask.png'), (64, 64))[0].numpy() == 0
    assert 0.2 < bg.mean() < 1
    assert (kept[bg] == a[bg]).all() and not (plain[bg] == a[bg]).all()

def test_keep_background_large(scene, tmp_path):
    "A large input is worked at the model's size, but only the edited region comes back resampled: the rest is the input's own pixels."
    big = Image.open(scene).resize((200, 136), Image.LANCZOS); big.save(tmp_path/'big.png')
    p = cli('edit', tmp_path/'big.png', '--ref', 'a horse and a tree on grass', '--query', 'a zebra and a tree on grass', '-o', tmp_path/'out.png', *FAST)
    assert p.returncode == 0, p.stderr
    a, b = np.asarray(big), np.asarray(Image.open(tmp_path/'out.png').convert('RGB'))
    assert a.shape == b.shape and 0.2 < (a == b).all(-1).mean() < 1

def test_refine_and_word_weight(scene, tmp_path):
    "--refine and --word-weight reach the edit: with the filter off and the prompt as written, the mask and the result differ from the defaults'."
    args = ['edit', scene, '--ref', 'a horse and a tree on grass', '--query', 'a zebra and a tree on grass', *FAST]
    assert cli(*args, '-o', tmp_path/'a.png', '--mask-out', tmp_path/'ma.png').returncode == 0
    p = cli(*args, '-o', tmp_path/'b.png', '--mask-out', tmp_path/'mb.png', '--refine', '0', '--word-weight', '1')
    assert p.returncode == 0, p.stderr
    a, b, ma, mb = [np.asarray(Image.open(tmp_path/f)) for f in ('a.png', 'b.png', 'ma.png', 'mb.png')]
    assert (ma != mb).any() and (a != b).any()

def test_sample(tmp_path):
    p = cli('sample', 'a dog on snow', '-o', tmp_path/'grid.png', '--n-images', '2', '--steps', '5', '--guide', 'update', '-q')
    assert p.returncode == 0, p.stderr
    assert Image.open(tmp_path/'grid.png').size == (128, 64)

def test_progress_bar(scene, tmp_path):
    p = cli('sample', 'a dog', '-o', tmp_path/'g.png', '--n-images', '1', '--steps', '3')
    assert p.returncode == 0 and 'sample:' in p.stderr and '/3 [' in p.stderr, p.stderr   # tqdm's bar: 'sample:  67%|...| 2/3 [...]'

@pytest.mark.parametrize('args,words', [
    (['edit', 'missing.png', '--ref', 'a', '--query', 'b', '-o', 'o.png'], ['no such image file', 'missing.png']),
    (['edit', '{notes}', '--ref', 'a', '--query', 'b', '-o', 'o.png'], ['cannot read', 'notes.txt']),
    (['edit', '{scene}', '--ref', 'a', '--query', 'b', '-o', 'o.png', '--mask', 'nomask.png'], ['no such mask file']),
    (['edit', '{scene}', '--ref', 'a', '--query', 'b', '-o', 'o.png', '--r', '1.5'], ['--r', '(0, 1]']),
    (['edit', '{scene}', '--ref', 'a', '--query', 'b', '-o', 'o.png', '--n', '0'], ['--n', 'from 1 to 100']),
    (['edit', '{scene}', '--ref', 'a', '--query', 'b', '-o', 'o.png', '--refine', '-2'], ['--refine', 'from 0']),
    (['edit', '{scene}', '--ref', 'a', '--query', 'b', '-o', 'o.png', '--word-weight', '0'], ['--word-weight', 'positive']),
    (['edit', '{scene}', '--ref', 'a', '--query', 'b', '-o', 'o.png', '--guide', 'rescale'], ['--guide', 'invalid choice']),
    (['edit', '{scene}', '--query', 'b', '-o', 'o.png'], ['--ref']),
    (['edit', '{scene}', '--ref', 'a', '--query', 'b', '-o', 'o.bad'], ['.png']),
    (['edit', '{scene}', '--ref', 'a', '--query', ' ', '-o', '{tmp}/o.png', *FAST], ['prompt is empty']),
    (['edit', '{scene}', '--ref', 'a', '--query', 'b', '-o', '{tmp}/o.png', '--model', '/no/such/model'], ['no model folder']),
    (['edit', '{scene}', '--ref', 'a', '--query', 'b', '-o', '{tmp}/o.png', '--model', 'someone/not-downloaded'], ['could not load']),
    (['edit', '{scene}', '--ref', 'a', '--query', 'b', '-o', '{tmp}/o.png', '--device', 'cpu', '--dtype', 'float16'], ['float16']),
    (['sample', 'a dog', '-o', 'g.png', '--n-images', 'two'], ['--n-images']),
    (['scene', 'unicorn', '-o', '{tmp}/u.png'], ['unknown objects']),
    (['nonsense'], ['invalid choice']),
])
def test_user_errors(args, words, scene, tmp_path):
    (tmp_path/'notes.txt').write_text('not an image')
    args = [a.format(scene=scene, tmp=tmp_path, notes=tmp_path/'notes.txt') for a in args]
    assert_user_error(cli(*args), *words)
    assert not (tmp_path/'o.png').exists()

def test_no_command():
    p = cli()
    assert p.returncode == 2 and 'Traceback' not in p.stderr and 'edit' in p.stderr

def test_demo(tmp_path):
    p = cli('demo', '-o', tmp_path, '--steps', '10', '-q')
    assert p.returncode == 0, p.stderr
    assert {f.name for f in tmp_path.iterdir()} == {'input.png', 'soft.png', 'mask.png', 'edit.png', 'demo.png'}
