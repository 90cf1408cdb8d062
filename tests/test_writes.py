"Library writes: a save stopped half way (an error, a SIGTERM) leaves the old file whole and no temporary file; training never writes over the embedded model unasked."
import os, signal, subprocess, sys, time
from pathlib import Path
import pytest
from PIL import Image

os.environ.setdefault('OMP_NUM_THREADS', '1')
from diffedit.interpolate import atomic_write, save_gif

ROOT = Path(__file__).resolve().parents[1]

def _frames(n=6, c=0): return [Image.new('RGB', (32, 32), ((c+9*i) % 256, 40, 200)) for i in range(n)]

# A child that saves slowly and says when writing has begun: each of Pillow's 40 GIF frames waits 0.1 s, or any writer inside
# `atomic_write` (here a 0-byte file) then waits 5 s.
SLOW = '''
import sys, time
import PIL.ImageFile as F
from PIL import Image
from diffedit.interpolate import atomic_write, save_gif
path, how = sys.argv[1:]
def wait(s): print('writing', flush=True); time.sleep(s)             # the file is open and partly written
orig = F._save
F._save = lambda *a, **k: (wait(0.1), orig(*a, **k))
frames = [Image.new('RGB', (32, 32), (i, 90, 20)) for i in range(40)]
if how == 'gif': save_gif(frames, path)
else:
    with atomic_write(path) as tmp: tmp.touch(); wait(5)
'''

def _kill_mid_save(tmp_path, how, name):
    "Start a slow save over an existing file, SIGTERM it 0.3 s after its writing began; the process's return code."
    (tmp_path/'slow.py').write_text(SLOW)
    env = dict(os.environ, OMP_NUM_THREADS='1', PYTHONPATH=str(ROOT))
    p = subprocess.Popen([sys.executable, str(tmp_path/'slow.py'), str(tmp_path/name), how], stdout=subprocess.PIPE, text=True, env=env)
    try:
        assert p.stdout.readline().strip() == 'writing'
        time.sleep(0.3); p.send_signal(signal.SIGTERM)
        return p.wait(timeout=60)
    finally: p.kill() if p.poll() is None else None

@pytest.mark.skipif(not hasattr(signal, 'SIGTERM') or sys.platform == 'win32', reason="POSIX signals")
@pytest.mark.parametrize('how,name', [
    ('gif', 'video.gif'),
    ('helper', 'out.png'),
])
def test_sigterm_mid_save(tmp_path, how, name):
    "SIGTERM 0.3 s into a save: the process still ends of the signal, the previous file is whole, no temporary file remains."
    old = tmp_path/name
    if how == 'gif': save_gif(_frames(), old)
    else: _frames(1)[0].save(old)
    before = old.read_bytes()
    rc = _kill_mid_save(tmp_path, how, name)
    assert rc == -signal.SIGTERM, rc
    assert old.read_bytes() == before
    assert sorted(f.name for f in tmp_path.iterdir()) == sorted([name, 'slow.py'])

def test_failed_write_keeps_old(tmp_path):
    "An error in the writer: the old file byte for byte, the temporary file gone, the error passed on."
    old = save_gif(_frames(), tmp_path/'v.gif'); before = old.read_bytes()
    with pytest.raises(OSError, match='disk full'):
        with atomic_write(old) as tmp:
            assert tmp.parent == tmp_path and tmp.name.startswith('.v.gif.') and tmp.name.endswith('.tmp')
            tmp.write_bytes(before[:50]); raise OSError('disk full')
    assert old.read_bytes() == before and [f.name for f in tmp_path.iterdir()] == ['v.gif']
    with pytest.raises(KeyboardInterrupt):
        with atomic_write(old) as tmp: tmp.write_bytes(b'x'); raise KeyboardInterrupt
    assert old.read_bytes() == before and [f.name for f in tmp_path.iterdir()] == ['v.gif']

def test_write_replaces_whole(tmp_path):
    "A save that ends: the new GIF in place with every frame, the mode a plain save gives (or the old file's), through a link to its target; handlers restored."
    h = signal.getsignal(signal.SIGTERM)
    p = save_gif(_frames(3), tmp_path/'sub'/'a.gif')
    with Image.open(p) as im: assert im.n_frames == 3
    u = os.umask(0); os.umask(u)
    assert p.stat().st_mode & 0o777 == 0o666 & ~u
    os.chmod(p, 0o640); save_gif(_frames(5, c=50), p)
    with Image.open(p) as im: assert im.n_frames == 5
    assert p.stat().st_mode & 0o777 == 0o640 and signal.getsignal(signal.SIGTERM) == h
    link = tmp_path/'link.gif'; link.symlink_to(p)
    save_gif(_frames(2), link)
    assert link.is_symlink()
    with Image.open(p) as im: assert im.n_frames == 2
    assert sorted(f.name for f in (tmp_path/'sub').iterdir()) == ['a.gif']

def test_refuses_what_is_not_a_file(tmp_path):
    "A folder, a FIFO or a link loop as the target: a one-line error, nothing replaced."
    with pytest.raises(ValueError, match='not a regular file'): save_gif(_frames(), tmp_path)
    if hasattr(os, 'mkfifo'):
        os.mkfifo(tmp_path/'f.gif')
        with pytest.raises(ValueError, match='not a regular file'): save_gif(_frames(), tmp_path/'f.gif')
        assert not (tmp_path/'f.gif').is_file()
    (tmp_path/'a.gif').symlink_to(tmp_path/'b.gif'); (tmp_path/'b.gif').symlink_to(tmp_path/'a.gif')
    with pytest.raises(ValueError, match='leads nowhere'): save_gif(_frames(), tmp_path/'a.gif')
    assert not [f for f in tmp_path.iterdir() if f.name.endswith('.tmp')]
