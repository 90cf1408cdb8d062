"Training through accelerate: a stopped and resumed run ends where an uninterrupted one does, two processes train as one, a saved model trains further."
import os, subprocess, sys, time, json, shutil
from pathlib import Path
import numpy as np, pytest, torch

os.environ.setdefault('OMP_NUM_THREADS', '1')
from diffedit.train import (configs, fit, make_dataset, make_tokenizer, train_classifier, train_unet, train_vae, main, Denoiser)

ROOT = Path(__file__).resolve().parents[1]

def _tiny(size=32):
    "Scenes, latents and token ids for a tiny model at `size` px."
    tok = make_tokenizer(); cfgs = configs(size, len(tok), tok.model_max_length)
    imgs, prompts, labels = make_dataset(8, size, workers=1)
    ids = tok(prompts, padding='max_length', max_length=tok.model_max_length, truncation=True, return_tensors='pt').input_ids
    g = torch.Generator().manual_seed(0)
    mean, std = torch.randn(8, 4, size//4, size//4, generator=g), torch.rand(8, 4, size//4, size//4, generator=g)*0.1
    return cfgs, imgs, labels, mean, std, ids

def _same(a, b): return all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))

def test_resume_matches_uninterrupted(tmp_path):
    cfgs, imgs, labels, mean, std, ids = _tiny()
    kw = dict(steps=4, bs=4, cfgs=cfgs, device='cpu', ckpt_every=2)
    straight = train_unet(mean, std, ids, **kw)
    first = train_unet(mean, std, ids, ckpt=tmp_path/'unet', deadline=time.time(), **kw)   # stops after one step
    assert not _same(first, straight)
    resumed = train_unet(mean, std, ids, ckpt=tmp_path/'unet', **kw)
    assert _same(resumed, straight)
    vkw = dict(steps=3, bs=2, cfg=configs(32)['vae'], device='cpu', ckpt_every=2)
    v_straight = train_vae(imgs, **vkw)
    train_vae(imgs, ckpt=tmp_path/'vae', deadline=time.time(), **vkw)
    assert _same(train_vae(imgs, ckpt=tmp_path/'vae', **vkw), v_straight)
    c_straight = train_classifier(imgs, labels, steps=3, bs=4, device='cpu')
    train_classifier(imgs, labels, steps=3, bs=4, device='cpu', ckpt=tmp_path/'clf', deadline=time.time())
    assert _same(train_classifier(imgs, labels, steps=3, bs=4, device='cpu', ckpt=tmp_path/'clf'), c_straight)

class _Line(torch.nn.Module):
    def __init__(self): super().__init__(); self.lin = torch.nn.Linear(1, 1)
    def forward(self, x, y): return torch.nn.functional.mse_loss(self.lin(x), y)

def _draw_line(g): x = torch.randn(8, 1, generator=g); return x, 3*x - 1

def test_crash_resumes_from_last_checkpoint(tmp_path):
    "A run that dies at step 7 resumes from its step-6 checkpoint and ends where an uninterrupted run ends."
    def run(draw, **kw): torch.manual_seed(0); return fit(_Line(), draw, steps=10, lr=0.05, ema=0.9, device='cpu', ckpt_every=3, **kw)
    def crashing(g):
        if g.initial_seed() == 7: raise KeyboardInterrupt
        return _draw_line(g)
    straight = run(_draw_line)
    with pytest.raises(KeyboardInterrupt): run(crashing, ckpt=tmp_path/'line')
    assert torch.load(tmp_path/'line'/'custom_checkpoint_0.pkl', weights_only=False)['n'] == 6
    assert _same(run(_draw_line, ckpt=tmp_path/'line'), straight)

def test_bad_input():
    cfgs, imgs, labels, mean, std, ids = _tiny()
    lin = torch.nn.Linear(1, 1)
    draw = lambda g: (torch.randn(3, 1, generator=g),)
    with pytest.raises(ValueError, match='steps must be'): fit(lin, draw, steps=0, lr=0.1)
    with pytest.raises(ValueError, match='device must be'): fit(lin, draw, steps=1, lr=0.1, device='tpu')
    with pytest.raises(ValueError, match='mixed_precision must be'): fit(lin, draw, steps=1, lr=0.1, mixed_precision='fp8x')
    with pytest.raises(ValueError, match='uint8 array'): train_vae(imgs.astype(np.float32), steps=1)
    with pytest.raises(ValueError, match='as long as'): train_unet(mean, std, ids[:3], steps=1)
    with pytest.raises(ValueError, match='as long as'): train_classifier(imgs, labels[:2], steps=1)

RANKS = '''
import os, sys, torch
from diffedit.train import configs, make_dataset, train_classifier, train_unet, train_vae
out = sys.argv[1]; rank = int(os.environ.get('RANK', 0)); size = 32
cfgs = configs(size, 350, 24)
imgs, prompts, labels = make_dataset(8, size, workers=1)
g = torch.Generator().manual_seed(0)
ids = torch.randint(2, 350, (8, 24), generator=g); ids[:, 0] = 0   # fixed ids: a tokenizer learnt in each process may number its tokens differently
mean, std = torch.randn(8, 4, 8, 8, generator=g), torch.rand(8, 4, 8, 8, generator=g)*0.1
sd = dict(unet=train_unet(mean, std, ids, steps=3, bs=4, cfgs=cfgs, device='cpu').state_dict(),
          vae=train_vae(imgs, steps=2, bs=2, cfg=cfgs['vae'], device='cpu').state_dict(),
          clf=train_classifier(imgs, labels, steps=3, bs=4, device='cpu').state_dict())
torch.save(sd, f"{out}/rank{rank}_of_{os.environ.get('WORLD_SIZE', 1)}.pt")
'''

def _launch(*args, n=2):
    "`accelerate launch` with `n` CPU processes (torchrun underneath; `--cpu` alone starts one process unless MPI is given)."
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(ROOT))
    cmd = [sys.executable, '-m', 'accelerate.commands.launch', '--multi_gpu', '--num_processes', str(n), '--num_machines', '1',
           '--mixed_precision', 'no', '--dynamo_backend', 'no', '--main_process_port', '29517', *args]
    r = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    return r

def test_two_processes_end_identical(tmp_path):
    (tmp_path/'ranks.py').write_text(RANKS)
    _launch(str(tmp_path/'ranks.py'), str(tmp_path))
    subprocess.run([sys.executable, str(tmp_path/'ranks.py'), str(tmp_path)], env=dict(os.environ, OMP_NUM_THREADS='1'), check=True, capture_output=True)
    r0, r1, one = [torch.load(tmp_path/f, weights_only=True) for f in ('rank0_of_2.pt', 'rank1_of_2.pt', 'rank0_of_1.pt')]
    for k in r0:
        assert all(torch.equal(r0[k][p], r1[k][p]) for p in r0[k]), f"{k}: the two processes differ"
    # the same global batches, split in two: the UNet and VAE end where one process ends, up to float rounding
    for k in ('unet', 'vae'):
        diff = max((r0[k][p].float() - one[k][p].float()).abs().max().item() for p in r0[k])
        assert diff < 1e-5, (k, diff)

def test_cli_two_processes(tmp_path):
    r = _launch('-m', 'diffedit.train', '--out', str(tmp_path/'run'), '--device', 'cpu', '--size', '32', '--n_scenes', '16', '--vae_steps', '2',
                '--vae_bs', '4', '--unet_steps', '2', '--unet_bs', '4', '--clf_steps', '2', '--clf_scenes', '20', '--eval_n', '1', '--eval_steps', '2',
                '--held_n', '4', '--workers', '1')
    m = json.loads((tmp_path/'run'/'metrics.json').read_text())
    assert m['processes'] == 2 and m['device'] == 'cpu'
    from diffusers import StableDiffusionPipeline
    pipe = StableDiffusionPipeline.from_pretrained(tmp_path/'run'/'tiny-sd')
    assert pipe.unet.config.sample_size == 8
    log = (tmp_path/'run'/'train_log.txt').read_text()
    assert log.count('unet step 0 ') == 1   # one process writes the log
    tok = lambda p: json.loads((p/'vocab.json').read_text())
    assert tok(tmp_path/'run'/'tiny-sd'/'tokenizer') == tok(tmp_path/'run'/'checkpoint'/'tokenizer')   # the processes shared one tokenizer

def test_cli_bad_input(capsys, monkeypatch):
    monkeypatch.setattr(sys, 'argv', ['diffedit-train', '--device', 'tpu'])
    with pytest.raises(SystemExit): main()
    assert "invalid choice: 'tpu'" in capsys.readouterr().err

def test_train_model_resumes(tmp_path):
    "A second call on the same folder resumes every stage from the checkpoint and writes the same model."
    from diffedit.train import train_model
    from safetensors.torch import load_file
    kw = dict(size=32, n_scenes=16, vae_steps=2, vae_bs=4, unet_steps=2, unet_bs=4, clf_steps=2, clf_scenes=20, device='cpu', workers=1,
              eval_n=1, eval_steps=2, held_n=4)
    train_model(tmp_path, **kw)
    unet = load_file(tmp_path/'tiny-sd'/'unet'/'diffusion_pytorch_model.safetensors')
    train_model(tmp_path, **kw)
    log = (tmp_path/'train_log.txt').read_text()
    assert 'resumed: VAE from checkpoint' in log and 'resumed: unet at step 2' in log and 'resumed: classifier at step 2' in log
    again = load_file(tmp_path/'tiny-sd'/'unet'/'diffusion_pytorch_model.safetensors')
    assert all(torch.equal(unet[k], again[k]) for k in unet)

def _scratch(path):
    "A tiny pipeline trained from scratch for two steps at 32 px, with its classifier beside it."
    from diffedit.train import train_model
    train_model(path, size=32, n_scenes=16, vae_steps=2, vae_bs=4, unet_steps=2, unet_bs=4, clf_steps=2, clf_scenes=20, device='cpu', workers=1,
                eval_n=0, held_n=4)
    return path/'tiny-sd'

def test_continue_from_pipeline(tmp_path):
    "Continuing starts from exactly the saved weights (its first loss is the loaded model's), keeps VAE and tokenizer, resumes, and loads with load_pipe."
    from diffedit.train import train_model, load_parts, unet_batches, encode_all
    from diffedit.core import load_pipe
    init = _scratch(tmp_path/'a')
    kw = dict(init_from=init, n_scenes=16, unet_steps=3, unet_bs=4, device='cpu', workers=1, eval_n=0, held_n=4, clf_scenes=20)
    m = train_model(tmp_path/'b', **kw)
    assert m['unet_steps_done'] == 3 and m['init_from'] == str(init) and m['vae_steps'] == 0 and m['clf_steps'] == 0 and m['unet_lr'] == 5e-4
    parts = load_parts(init)
    imgs, prompts, _ = make_dataset(16, 32, workers=1)
    mean, std = encode_all(parts['vae'], imgs)
    ids = parts['tok'](prompts, padding='max_length', max_length=parts['tok'].model_max_length, truncation=True, return_tensors='pt').input_ids
    batch = unet_batches(mean, std, ids, bs=4, scaling=parts['scaling'], cfgs=parts['cfgs'])(torch.Generator().manual_seed(0))   # step 0's batch
    with torch.no_grad():
        loaded = parts['denoiser'](*batch).item()
        fresh = Denoiser(dict(unet=type(parts['denoiser']['unet'])(**parts['cfgs']['unet']),
                                                        text=type(parts['denoiser']['text'])(parts['denoiser']['text'].config)))(*batch).item()
    log = (tmp_path/'b'/'train_log.txt').read_text()
    first = next(l for l in log.splitlines() if l.startswith('unet step 0 ')).split()[4]
    assert first == f"{loaded:.5f}" != f"{fresh:.5f}", (first, loaded, fresh)
    assert f"scaling factor {parts['scaling']:.4f} kept" in log and 'classifier kept from' in log
    for f in ('vae/diffusion_pytorch_model.safetensors', 'tokenizer/vocab.json', 'tokenizer/merges.txt'):
        assert (tmp_path/'b'/'tiny-sd'/f).read_bytes() == (init/f).read_bytes(), f
    pipe = load_pipe(tmp_path/'b'/'tiny-sd', device='cpu')
    assert pipe.vae.config.scaling_factor == parts['scaling']
    # stopped after its first step by the time budget, then resumed: the same weights as the uninterrupted continuation
    train_model(tmp_path/'c', minutes=1e-9, **kw)
    assert 'stopping at step 1 of 3' in (tmp_path/'c'/'train_log.txt').read_text()
    train_model(tmp_path/'c', **kw)
    assert 'resumed: unet at step 1' in (tmp_path/'c'/'train_log.txt').read_text()
    from safetensors.torch import load_file
    for k in ('unet/diffusion_pytorch_model.safetensors', 'text_encoder/model.safetensors'):
        a, b = load_file(tmp_path/'b'/'tiny-sd'/k), load_file(tmp_path/'c'/'tiny-sd'/k)
        assert all(torch.equal(a[n], b[n]) for n in a), k

def test_continue_bad_input(tmp_path, capsys, monkeypatch):
    from diffedit.train import train_model
    with pytest.raises(ValueError, match='not a saved pipeline folder'): train_model(tmp_path/'x', init_from=tmp_path)
    (tmp_path/'m'/'tiny-sd').mkdir(parents=True); (tmp_path/'m'/'tiny-sd'/'model_index.json').write_text('{}')
    with pytest.raises(ValueError, match='write over the model it starts from'): train_model(tmp_path/'m', init_from=tmp_path/'m'/'tiny-sd')
    with pytest.raises(ValueError, match='init must be a Denoiser'): train_unet(torch.zeros(2, 4, 2, 2), torch.zeros(2, 4, 2, 2), torch.zeros(2, 3, dtype=torch.long), steps=1, init=torch.nn.Linear(1, 1))
    for argv, msg in ((['--init-from', str(tmp_path/'nothing')], 'is not a saved pipeline folder'), (['--unet_lr', '0'], '--unet_lr must be positive')):
        monkeypatch.setattr(sys, 'argv', ['diffedit-train', *argv])
        with pytest.raises(SystemExit): main()
        err = capsys.readouterr().err.strip().splitlines()
        assert msg in err[-1] and 'Traceback' not in '\n'.join(err), err

def test_gpu_continue_tiny(tmp_path):
    "bench/gpu_continue.sh runs every phase at a tiny size on the CPU; its weights unpack into a pipeline that loads."
    import tarfile
    from diffedit.core import load_pipe, embedded_model
    env = dict(os.environ, OMP_NUM_THREADS='1', OUT=str(tmp_path/'out'), SKIP_WHEELS='1', PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    r = subprocess.run(['bash', str(ROOT/'bench'/'gpu_continue.sh'), '--tiny', '--device', 'cpu'], env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    out = tmp_path/'out'; res = json.loads((out/'continue.json').read_text())
    assert res['finished'] and res['errors'] == {}, res['errors']
    assert res['probe']['steps'] == 3 and res['train']['unet_steps_done'] == 3
    assert res['size']['vae_unchanged'] and res['size']['tokenizer_unchanged'] and res['size']['models_folder_if_adopted_mb'] < 40
    assert set(res['quality']) == {'today', 'new', 'new_at_least_today'}
    s = res['edits']['summary']
    assert res['edits']['done'] == 2 and s['by_model']['new']['edits'] == s['by_model']['today']['edits'] == 2 and s['paired']['edits'] == 2
    assert sorted(p.name for p in out.iterdir()) == ['continue.json', 'continue.log', 'new-model.tar.part_aa', 'new-model.tar.part_ab']
    assert all(p.stat().st_size < 16*2**20 for p in out.iterdir())   # each file that comes back from a visit is at most 16 MiB
    # adopting: today's folder with the new UNet and text encoder loads and holds the new weights
    (tmp_path/'new-model.tar').write_bytes(b''.join(p.read_bytes() for p in sorted(out.glob('new-model.tar.part_*'))))
    adopted = tmp_path/'adopted'; shutil.copytree(embedded_model(), adopted/'tiny-sd')
    with tarfile.open(tmp_path/'new-model.tar') as t: t.extractall(adopted, filter='data')
    m = json.loads((adopted/'metrics.json').read_text())
    assert m['unet_steps_done'] == 3 and m['init_from'] == str(embedded_model()) and set(m['generation_accuracy']) == {'3.0', '5.0', '7.5'}
    pipe = load_pipe(adopted/'tiny-sd', device='cpu')
    assert pipe.unet.config.sample_size == 16

def _no_training(monkeypatch):
    "Stop `train_model` at its first real work: a test of the argument paths must never train, least of all into the shipped model."
    import diffedit.train as T
    def boom(*a, **k): raise RuntimeError('training started')
    monkeypatch.setattr(T, '_accelerator', boom)
    return T

def test_cli_default_out_is_not_embedded(monkeypatch):
    "Without --out the run goes to ./tiny-sd-trained; --overwrite-embedded alone (and only it) names the package's model folder."
    T = _no_training(monkeypatch); seen = []
    monkeypatch.setattr(T, 'train_model', lambda **k: seen.append(k))
    T.main([]); T.main(['--overwrite-embedded']); T.main(['--out', '/tmp/elsewhere'])
    assert [Path(k['out']) for k in seen] == [Path('tiny-sd-trained'), T.EMBEDDED_DIR, Path('/tmp/elsewhere')]
    assert [k['overwrite_embedded'] for k in seen] == [False, True, False]
    assert not T.is_embedded(seen[0]['out']) and T.is_embedded(seen[1]['out'])
    assert (T.EMBEDDED_DIR/'tiny-sd'/'model_index.json').is_file()   # the folder it guards is the one that loads

def test_cli_refuses_embedded_out(monkeypatch, capsys, tmp_path):
    "--out naming the embedded model's folder (or a folder in it, or a link to it) is a one-line error before any work; nothing in it changes."
    T = _no_training(monkeypatch)
    stamp = {p: p.stat().st_mtime_ns for p in T.EMBEDDED_DIR.rglob('*')}
    (tmp_path/'link').symlink_to(T.EMBEDDED_DIR)
    for out in (T.EMBEDDED_DIR, T.EMBEDDED_DIR/'tiny-sd', tmp_path/'link'):
        with pytest.raises(SystemExit) as e: T.main(['--out', str(out)])
        assert e.value.code == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert 'is the embedded model' in err[-1] and '--overwrite-embedded' in err[-1] and 'Traceback' not in '\n'.join(err), err
        with pytest.raises(ValueError, match='overwrite_embedded=True'): T.train_model(out)
    with pytest.raises(RuntimeError, match='training started'): T.train_model(T.EMBEDDED_DIR, overwrite_embedded=True)   # allowed when asked
    assert {p: p.stat().st_mtime_ns for p in T.EMBEDDED_DIR.rglob('*')} == stamp
