"""The `diffedit` command on the embedded model: through `diffedit.cli.main`, the function the installed script calls, in this process
(the same parsing, checks, messages and exit codes, without a fresh interpreter importing torch for every call), and in a subprocess,
as a user runs it, where the process itself is what is tested (the installed script, exit codes and stderr of `python -m diffedit.cli`,
two processes under accelerate, file names the file system cannot decode, memory)."""
import contextlib, io, os, shutil, subprocess, sys
import numpy as np, pytest
from PIL import Image

# one torch thread: on a busy machine several threads per process wait on each other (far slower than one)
ENV = {'OMP_NUM_THREADS': '1', **os.environ, 'HF_HUB_OFFLINE': '1', 'DIFFEDIT_MODEL': ''}
ENV.pop('DIFFEDIT_DEBUG', None)
FAST = ['--steps', '10', '--n', '2', '-q']   # few steps: the tests check the plumbing, the notebooks the quality

def cli(*args, script=False, process=False, timeout=600, env=None):
    "Run `diffedit ARGS` with `env` added to the environment; returns a CompletedProcess: `main` in this process, or with `process` `python -m diffedit.cli` in a subprocess (the installed script if `script`)."
    args = [str(a) for a in args]
    if script or process:
        cmd = [shutil.which('diffedit')] if script else [sys.executable, '-m', 'diffedit.cli']
        return subprocess.run(cmd + args, capture_output=True, text=True, env={**ENV, **(env or {})}, timeout=timeout)
    from diffedit.cli import main
    out, err = io.StringIO(), io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):   # the environment put back after
        mp.delenv('DIFFEDIT_DEBUG', raising=False)
        for k, v in {**ENV, **(env or {})}.items(): mp.setenv(k, v)
        try: rc = main(args)
        except SystemExit as e: rc = e.code if isinstance(e.code, int) else 0 if e.code is None else 1   # argparse: 0 after --help, 2 on a bad option
    return subprocess.CompletedProcess(['diffedit', *args], rc, out.getvalue(), err.getvalue())

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
            '-o', out, '--mask-out', mask, '--soft-out', soft, '--guide', 'pred', '--schedule', 'cosine', '--decay-to', '1', *FAST, process=True)   # as a user runs it
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
            '-o', tmp_path/'out.jpg', '--mask', tmp_path/'m.png', '--mask-out', tmp_path/'mask.png', '--returned-mask', 'decode', *FAST)
    assert p.returncode == 0, p.stderr
    assert (np.asarray(Image.open(tmp_path/'mask.png')) > 127).sum() == 24*24
    assert Image.open(tmp_path/'out.jpg').format == 'JPEG'

def test_keep_background(scene, tmp_path):
    "By default the edit is pasted into the input: outside the feathered mask every pixel is the input's; --no-keep-background is the decoded image."
    from diffedit.edit import feather_mask
    args = ['edit', scene, '--ref', 'a horse and a tree on grass', '--query', 'a zebra and a tree on grass', *FAST]
    assert cli(*args, '-o', tmp_path/'kept.png', '--mask-out', tmp_path/'mask.png', '--returned-mask', 'decode').returncode == 0   # the mask the paste went through
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

def default_and(scene, tmp_path, *options):
    "The edit at the defaults and with `options`: the two images and the two masks written to --mask-out, as arrays."
    args = ['edit', scene, '--ref', 'a horse and a tree on grass', '--query', 'a zebra and a tree on grass', *FAST]
    assert cli(*args, '-o', tmp_path/'a.png', '--mask-out', tmp_path/'ma.png').returncode == 0
    p = cli(*args, '-o', tmp_path/'b.png', '--mask-out', tmp_path/'mb.png', *options)
    assert p.returncode == 0, p.stderr
    return [np.asarray(Image.open(tmp_path/f)) for f in ('a.png', 'b.png', 'ma.png', 'mb.png')]

def test_refine_and_word_weight(scene, tmp_path):
    "--refine and --word-weight reach the edit: with the filter off and the prompt as written, the mask and the result differ from the defaults'."
    a, b, ma, mb = default_and(scene, tmp_path, '--refine', '0', '--word-weight', '1')
    assert (ma != mb).any() and (a != b).any()

def test_returned_mask(scene, tmp_path):
    "--returned-mask decode changes the mask written to --mask-out, not the edit: the same image, the decoding mask instead of the default outline, which lies inside its feather."
    from diffedit.edit import feather_mask
    a, b, ma, mb = default_and(scene, tmp_path, '--returned-mask', 'decode')
    assert (a == b).all() and (ma > 127).any() and ((mb > 127) != (ma > 127)).any() and (mb > 127).sum() > (ma > 127).sum()
    assert not (ma > 127)[feather_mask(Image.open(tmp_path/'mb.png'), (64, 64))[0].numpy() == 0].any()
    assert_user_error(cli('edit', scene, '--ref', 'a horse', '--query', 'a zebra', '-o', tmp_path/'c.png', '--returned-mask', 'tight'), 'returned-mask')

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
    (['edit', '{scene}', '--ref', 'a', '--query', 'b', '-o', 'o.png', '--refine', '-2'], ['--refine', '[0, 32]']),
    (['edit', '{scene}', '--ref', 'a', '--query', 'b', '-o', 'o.png', '--word-weight', '0'], ['--word-weight', '(0, 10]']),
    (['edit', '{scene}', '--ref', 'a', '--query', 'b', '-o', 'o.png', '--blur', '1e9'], ['--blur', '[0, 16]']),
    (['edit', '{scene}', '--ref', 'a', '--query', 'b', '-o', 'o.png', '--clip', '0'], ['--clip', '(0, 1]']),
    (['edit', '{scene}', '--ref', 'a', '--query', 'b', '-o', 'o.png', '--guide', 'rescale'], ['--guide', 'invalid choice']),
    (['edit', '{scene}', '--query', 'b', '-o', 'o.png'], ['--ref']),
    (['edit', '{scene}', '--ref', 'a', '--query', 'b', '-o', 'o.bad'], ['.png']),
    (['edit', '{scene}', '--ref', 'a', '--query', ' ', '-o', '{tmp}/o.png', *FAST], ['prompt is empty']),
    (['edit', '{scene}', '--ref', 'a', '--query', 'b', '-o', '{tmp}/o.png', '--model', '/no/such/model'], ['no model folder']),
    (['edit', '{scene}', '--ref', 'a', '--query', 'b', '-o', '{tmp}/o.png', '--model', 'someone/not-downloaded'], ['could not load']),
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
    for p in (cli(), cli(process=True)):
        assert p.returncode == 2 and 'Traceback' not in p.stderr and 'edit' in p.stderr

def test_demo(tmp_path):
    p = cli('demo', '-o', tmp_path, '--steps', '10', '-q')
    assert p.returncode == 0, p.stderr
    assert {f.name for f in tmp_path.iterdir()} == {'input.png', 'soft.png', 'mask.png', 'edit.png', 'demo.png'}

def test_knob_options_from_config():
    "Every knob of DiffEditConfig is an option of diffedit edit, named as its field, with its default; the old spellings stay."
    from diffedit.cli import parser
    from diffedit.config import DEFAULTS, DiffEditConfig
    sub = next(a for a in parser()._actions if a.__class__.__name__ == '_SubParsersAction')
    acts = {a.dest: a for a in sub.choices['edit']._actions}
    for k in DiffEditConfig.__dataclass_fields__:
        assert '--' + k.replace('_', '-') in acts[k].option_strings, k
        assert acts[k].default == (None if k == 'guidance_scale' else getattr(DEFAULTS, k)), k
    assert '-g' in acts['guidance_scale'].option_strings and '--no-keep-background' in acts['keep_background'].option_strings

def test_edit_config():
    "The parsed options make one config: the knobs given, the defaults for the rest, the guide's own guidance scale."
    from diffedit.cli import parser, edit_config
    from diffedit.config import DEFAULTS
    a = parser().parse_args(['edit', 'x.png', '-R', 'a', '-Q', 'b', '-o', 'o.png', '--r', '0.5', '--blur', '0', '--guide', 'update', '--no-keep-background'])
    assert edit_config(a) == DEFAULTS.replace(r=0.5, blur=0., guide='update', guidance_scale=0.2, keep_background=False)

@pytest.mark.parametrize('env,want', [({}, 'float32'), ({'DIFFEDIT_DTYPE': 'bfloat16'}, 'bfloat16'), ({'DIFFEDIT_DTYPE': 'float32'}, 'float32')])
def test_dtype_from_env(env, want, monkeypatch):
    "load_pipe reads the weights' dtype from DIFFEDIT_DTYPE when none is given; a dtype given wins."
    import torch
    from diffedit.core import load_pipe, weights_dtype
    monkeypatch.delenv('DIFFEDIT_DTYPE', raising=False)
    for k, v in env.items(): monkeypatch.setenv(k, v)
    assert load_pipe(device='cpu').unet.dtype == getattr(torch, want)
    assert weights_dtype('float32', 'cpu') == torch.float32

def test_dtype_env_unknown(scene, tmp_path):
    assert_user_error(cli('edit', scene, '-R', 'a', '-Q', 'b', '-o', tmp_path/'o.png', '-q', env={'DIFFEDIT_DTYPE': 'float8'}), 'DIFFEDIT_DTYPE', 'bfloat16')

REF, QUERY = 'a horse and a tree on grass', 'a zebra and a tree on grass'

def test_several_images(scene, tmp_path):
    "Several inputs are edited in batches; each edit is saved as <input name>.png in the -o folder, its mask in --mask-out's; each the same as edited alone."
    from diffedit.scenes import make_scene
    make_scene(['dog', 'tree'], 'snow', seed=2).image.save(tmp_path/'dog.png')
    p = cli('edit', scene, tmp_path/'dog.png', '-R', REF, '-Q', QUERY, '-o', tmp_path/'out', '--mask-out', tmp_path/'masks', '--batch-size', '2', *FAST)
    assert p.returncode == 0, p.stderr
    assert sorted(f.name for f in (tmp_path/'out').iterdir()) == ['dog.png', 'scene.png'] and sorted(f.name for f in (tmp_path/'masks').iterdir()) == ['dog.png', 'scene.png']
    assert cli('edit', scene, '-R', REF, '-Q', QUERY, '-o', tmp_path/'alone.png', *FAST).returncode == 0
    a, b = (np.asarray(Image.open(f), np.int16) for f in (tmp_path/'out'/'scene.png', tmp_path/'alone.png'))
    assert np.abs(a - b).max() <= 1                                   # a batch of two gives the single edit, to float rounding

def _csv(tmp_path, scene):
    from diffedit.scenes import make_scene
    (tmp_path/'in').mkdir(exist_ok=True)
    rows = [('horse', ['horse', 'tree'], 'grass', 'zebra'), ('car', ['car', 'house'], 'road', 'bus'), ('apple', ['apple'], 'sand', 'pear')]
    lines = ['image,ref,query']
    for name, objs, bg, new in rows:
        s = make_scene(objs, bg, seed=1); s.image.save(tmp_path/'in'/f'{name}.png')
        lines.append(f'in/{name}.png,"{s.prompt}","{s.swap(objs[0], new).prompt}"')
    (tmp_path/'edits.csv').write_text('\n'.join(lines) + '\n')
    return tmp_path/'edits.csv'

def test_csv_two_processes(scene, tmp_path):
    "A CSV of edits: two processes under accelerate launch write the same files as one process."
    edits = _csv(tmp_path, scene)
    p = cli('edit', '--csv', edits, '-o', tmp_path/'one', '--mask-out', tmp_path/'one_m', '--batch-size', '2', *FAST)
    assert p.returncode == 0, p.stderr
    from diffedit.evaluate import _free_port
    cmd = [sys.executable, '-m', 'accelerate.commands.launch', '--multi_gpu', '--num_processes', '2', '--num_machines', '1', '--mixed_precision', 'no',
           '--dynamo_backend', 'no', '--main_process_port', str(_free_port()), '-m', 'diffedit.cli',
           'edit', '--csv', edits, '-o', tmp_path/'two', '--mask-out', tmp_path/'two_m', '--batch-size', '2', *FAST]
    p = subprocess.run([str(a) for a in cmd], capture_output=True, text=True, env=ENV, timeout=600)
    assert p.returncode == 0, p.stderr[-3000:]
    for a, b in (('one', 'two'), ('one_m', 'two_m')):
        names = sorted(f.name for f in (tmp_path/a).iterdir())
        assert names == ['apple.png', 'car.png', 'horse.png'] == sorted(f.name for f in (tmp_path/b).iterdir())
        for n in names: assert (tmp_path/a/n).read_bytes() == (tmp_path/b/n).read_bytes(), (a, n)

@pytest.mark.parametrize('case,words', [
    ('same names', ['one name', 'rename']),
    ('-o a file name', ['folder']),
    ('csv without query', ['query column']),
    ('csv and --ref', ['--csv', '--ref']),
    ('csv missing image', ['no such image', 'nope.png']),
    ('csv punctuation query', ['no words', 'line 2']),
    ('mask with several', ['--mask', 'one input']),
    ('no image', ['give an image']),
])
def test_batch_errors(case, words, scene, tmp_path):
    "Mistakes in a run of several edits are found before the model loads, and nothing is written."
    (tmp_path/'a').mkdir(); Image.open(scene).save(tmp_path/'a'/'scene.png')
    (tmp_path/'nq.csv').write_text('image,ref\nx.png,a\n'); (tmp_path/'miss.csv').write_text('image,ref,query\nnope.png,a,b\n')
    (tmp_path/'punct.csv').write_text(f'image,ref,query\n{scene},a,!!!\n')
    args = {'same names': [scene, tmp_path/'a'/'scene.png', '-R', 'a', '-Q', 'b', '-o', tmp_path/'out'],
            '-o a file name': [scene, tmp_path/'a'/'scene.png', '-R', 'a', '-Q', 'b', '-o', tmp_path/'out.png'],
            'csv without query': ['--csv', tmp_path/'nq.csv', '-o', tmp_path/'out'],
            'csv and --ref': ['--csv', tmp_path/'miss.csv', '-R', 'a', '-o', tmp_path/'out'],
            'csv missing image': ['--csv', tmp_path/'miss.csv', '-o', tmp_path/'out'],
            'csv punctuation query': ['--csv', tmp_path/'punct.csv', '-o', tmp_path/'out'],
            'mask with several': [scene, tmp_path/'a'/'scene.png', '-R', 'a', '-Q', 'b', '-o', tmp_path/'out', '--mask', scene],
            'no image': ['-R', 'a', '-Q', 'b', '-o', tmp_path/'out']}[case]
    p = cli('edit', *args)
    assert_user_error(p, *words)
    assert 'Loading' not in p.stderr and not (tmp_path/'out').exists()
