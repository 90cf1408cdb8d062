import json, math, os, time, copy
from pathlib import Path
import numpy as np, torch, torch.nn as nn, torch.nn.functional as F
from .scenes import OBJECTS, BACKGROUNDS, caption, make_scene

SOT,EOT = "<|startoftext|>","<|endoftext|>"

def make_tokenizer(max_len=24, vocab_size=600):
    "A CLIP BPE tokenizer learnt from every caption the scene generator can write."
    from tokenizers import Tokenizer, Regex, models, pre_tokenizers, trainers, normalizers
    from transformers import CLIPTokenizer
    tok = Tokenizer(models.BPE(unk_token=EOT, end_of_word_suffix="</w>", continuing_subword_prefix=""))
    # the same normaliser and pre-tokeniser as `CLIPTokenizer`, so its BPE merges apply unchanged
    tok.normalizer = normalizers.Sequence([normalizers.NFC(), normalizers.Replace(Regex(r"\s+"), " "), normalizers.Lowercase()])
    tok.pre_tokenizer = pre_tokenizers.Sequence([pre_tokenizers.Split(Regex(
        r"""<\|startoftext\|>|<\|endoftext\|>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+"""),
        behavior="removed", invert=True), pre_tokenizers.ByteLevel(add_prefix_space=False)])
    corpus = [caption(os_, b) for b in BACKGROUNDS for o in OBJECTS for os_ in ([o], [o,'tree'], ['apple',o,'car'])]
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[SOT,EOT],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), end_of_word_suffix="</w>", show_progress=False))
    m = json.loads(tok.to_str())['model']
    return CLIPTokenizer(vocab=m['vocab'], merges=[tuple(x) for x in m['merges']], model_max_length=max_len)

def save_tokenizer(tok, path):
    "Save `tok` with `tokenizer.json` and the `vocab.json`/`merges.txt` pair older `CLIPTokenizer`s read."
    path = Path(path); tok.save_pretrained(path)
    m = json.loads(tok.backend_tokenizer.to_str())['model']
    (path/'vocab.json').write_text(json.dumps(m['vocab']))
    (path/'merges.txt').write_text('#version: 0.2\n' + '\n'.join(' '.join(x) for x in m['merges']) + '\n')

def configs(size=64, vocab_size=600, max_len=24):
    "The tiny model's configs: a 4x VAE, a 2-layer CLIP text encoder, a ~13M-parameter UNet."
    vae = dict(in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(64,128,128), layers_per_block=2,
               down_block_types=("DownEncoderBlock2D",)*3, up_block_types=("UpDecoderBlock2D",)*3, sample_size=size, norm_num_groups=32)
    text = dict(vocab_size=vocab_size, hidden_size=256, intermediate_size=1024, num_hidden_layers=2, num_attention_heads=4,
                max_position_embeddings=max_len, bos_token_id=0, eos_token_id=1, pad_token_id=1, projection_dim=256)
    unet = dict(sample_size=size//4, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(64,128,128),
                down_block_types=("DownBlock2D","CrossAttnDownBlock2D","CrossAttnDownBlock2D"),
                up_block_types=("CrossAttnUpBlock2D","CrossAttnUpBlock2D","UpBlock2D"),
                cross_attention_dim=256, attention_head_dim=8, norm_num_groups=32)
    sched = dict(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                 clip_sample=False, set_alpha_to_one=False, steps_offset=1, prediction_type="epsilon")
    return dict(vae=vae, text=text, unet=unet, sched=sched)

def _scenes_chunk(args):
    seeds,size,single = args
    out,prompts,labels = [],[],[]
    for s in seeds:
        sc = make_scene(seed=s, size=size, n=1 if single else None)
        out.append(np.asarray(sc.image)); prompts.append(sc.prompt); labels.append(list(OBJECTS).index(sc.objects[0]))
    return np.stack(out), prompts, labels

def make_dataset(n, size=64, seed=0, workers=None, single=False):
    "`n` scenes as a uint8 array (n,size,size,3), their prompts and first-object labels, drawn in parallel."
    seeds = list(range(seed, seed+n)); cs = 500
    chunks = [(seeds[i:i+cs], size, single) for i in range(0, n, cs)]
    workers = workers or os.cpu_count()
    if workers > 1:
        import multiprocessing as mp
        with mp.get_context('fork').Pool(workers) as p: res = p.map(_scenes_chunk, chunks)
    else: res = [_scenes_chunk(c) for c in chunks]
    return np.concatenate([r[0] for r in res]), sum([r[1] for r in res], []), sum([r[2] for r in res], [])

def to_tensor(imgs): return torch.from_numpy(imgs).permute(0,3,1,2).float().div(127.5).sub(1)  # (B,3,H,W) in [-1,1]

class EMA:
    "Exponential moving average of a module's weights, with the usual warm-up of its decay."
    def __init__(self, model, decay=0.999): self.model,self.decay,self.n = copy.deepcopy(model).eval().requires_grad_(False),decay,0
    @torch.no_grad()
    def update(self, model):
        self.n += 1; d = min(self.decay, (1+self.n)/(10+self.n))
        for e,p in zip(self.model.parameters(), model.parameters()): e.lerp_(p.detach().float(), 1-d)

def lr_at(step, total, lr, warmup):
    "Linear warm-up then cosine decay to 0."
    if step < warmup: return lr*(step+1)/warmup
    return lr*0.5*(1+math.cos(math.pi*(step-warmup)/max(1,total-warmup)))

def _autocast(device): return torch.autocast('cuda', torch.bfloat16) if device.type=='cuda' else torch.autocast('cpu', enabled=False)

def _log(msg, log):
    print(msg, flush=True)
    if log: open(log,'a').write(msg+'\n')

def train_vae(imgs, steps=2000, bs=64, lr=5e-4, kl=1e-6, device='cpu', log=None, cfg=None):
    "Train an `AutoencoderKL` on scenes (uint8 array) with MSE + a small KL term; returns the EMA model."
    from diffusers import AutoencoderKL
    device = torch.device(device)
    vae = AutoencoderKL(**(cfg or configs(imgs.shape[1])['vae'])).to(device).train()
    ema = EMA(vae, 0.998); opt = torch.optim.AdamW(vae.parameters(), lr=lr, weight_decay=0.)
    data = to_tensor(imgs) if device.type=='cpu' else to_tensor(imgs).to(device)
    g = torch.Generator().manual_seed(0); t0 = time.time()
    for step in range(steps):
        for pg in opt.param_groups: pg['lr'] = lr_at(step, steps, lr, 100)
        x = data[torch.randint(len(data), (bs,), generator=g)].to(device)
        with _autocast(device):
            post = vae.encode(x).latent_dist
            rec = vae.decode(post.sample()).sample
        loss = F.mse_loss(rec.float(), x) + kl*post.kl().mean()
        opt.zero_grad(set_to_none=True); loss.backward(); nn.utils.clip_grad_norm_(vae.parameters(), 1.); opt.step(); ema.update(vae)
        if step%100==0 or step==steps-1: _log(f"vae step {step} loss {loss.item():.5f} {time.time()-t0:.0f}s", log)
    return ema.model

@torch.no_grad()
def psnr(vae, imgs, device='cpu', bs=256):
    "Mean reconstruction PSNR (dB, images in [0,1]) of `vae` on uint8 scenes, decoding the posterior mean."
    out = []
    for i in range(0, len(imgs), bs):
        x = to_tensor(imgs[i:i+bs]).to(device, vae.dtype)
        rec = vae.decode(vae.encode(x).latent_dist.mode()).sample.float().clamp(-1,1)
        mse = ((rec-x.float())/2).pow(2).mean((1,2,3))
        out.append(-10*torch.log10(mse))
    return torch.cat(out).mean().item()

@torch.no_grad()
def encode_all(vae, imgs, device='cpu', bs=256):
    "Posterior mean and std of every scene's latents (unscaled)."
    ms,ss = [],[]
    for i in range(0, len(imgs), bs):
        d = vae.encode(to_tensor(imgs[i:i+bs]).to(device)).latent_dist
        ms.append(d.mean.cpu()); ss.append(d.std.cpu())
    return torch.cat(ms), torch.cat(ss)

def train_unet(mean, std, ids, steps=4000, bs=256, lr=1e-3, p_uncond=0.1, scaling=1., device='cpu', log=None,
               cfgs=None, unet=None, text=None, ema=None, start=0, ckpt=None, ckpt_every=500, deadline=None):
    "Train the UNet and text encoder together on scaled latents with the DDPM loss; drops 10% of captions for CFG."
    from diffusers import UNet2DConditionModel, DDIMScheduler
    from transformers import CLIPTextModel, CLIPTextConfig
    from tqdm.auto import tqdm
    device = torch.device(device); cfgs = cfgs or configs()
    unet = unet or UNet2DConditionModel(**cfgs['unet'])
    text = text or CLIPTextModel(CLIPTextConfig(**cfgs['text']))
    unet,text = unet.to(device).train(), text.to(device).train()
    model = nn.ModuleDict(dict(unet=unet, text=text))
    ema = ema or EMA(model, 0.999)
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=1e-2)
    if ckpt and (ckpt/'opt.pt').exists() and start: opt.load_state_dict(torch.load(ckpt/'opt.pt'))
    sched = DDIMScheduler(**cfgs['sched'])
    acp = sched.alphas_cumprod.to(device)
    mean,std,ids = mean.to(device),std.to(device),ids.to(device)
    empty = ids[:1].clone(); empty[:,1:] = cfgs['text']['eos_token_id']  # the tokenised empty caption: SOT then EOT padding
    g = torch.Generator(device).manual_seed(start); t0 = time.time()
    for step in tqdm(range(start, steps), desc='unet', mininterval=5, disable=None):
        for pg in opt.param_groups: pg['lr'] = lr_at(step, steps, lr, 200)
        idx = torch.randint(len(mean), (bs,), generator=g, device=device)
        x0 = (mean[idx] + std[idx]*torch.randn(mean[idx].shape, generator=g, device=device)) * scaling
        tok = torch.where(torch.rand(bs, 1, generator=g, device=device) < p_uncond, empty, ids[idx])
        eps = torch.randn(x0.shape, generator=g, device=device)
        t = torch.randint(0, 1000, (bs,), generator=g, device=device)
        a = acp[t].view(-1,1,1,1)
        xt = a.sqrt()*x0 + (1-a).sqrt()*eps   # x_t = sqrt(a) x0 + sqrt(1-a) eps
        with _autocast(device):
            emb = text(tok)[0]
            pred = unet(xt, t, emb).sample
        loss = F.mse_loss(pred.float(), eps)
        opt.zero_grad(set_to_none=True); loss.backward(); nn.utils.clip_grad_norm_(model.parameters(), 1.); opt.step(); ema.update(model)
        if step%100==0 or step==steps-1: _log(f"unet step {step} loss {loss.item():.4f} {time.time()-t0:.0f}s", log)
        if ckpt and ((step+1)%ckpt_every==0 or step==steps-1): save_checkpoint(ckpt, model, ema, opt, step+1)
        if deadline and time.time() > deadline: _log(f"stopping at step {step+1}: time budget spent", log); break
    return ema.model

def resume_state(ckpt, cfgs, log=None):
    "The UNet, text encoder, EMA and step saved in `ckpt`, as `train_unet` keyword arguments (empty when there is none)."
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextConfig
    if not (Path(ckpt)/'state.pt').exists(): return {}
    sd = torch.load(Path(ckpt)/'state.pt')
    model = nn.ModuleDict(dict(unet=UNet2DConditionModel(**cfgs['unet']), text=CLIPTextModel(CLIPTextConfig(**cfgs['text']))))
    model.load_state_dict(sd['model']); ema = EMA(model); ema.model.load_state_dict(sd['ema']); ema.n = sd['n']
    _log(f"resumed: UNet at step {sd['step']}", log)
    return dict(unet=model['unet'], text=model['text'], ema=ema, start=sd['step'])

def save_checkpoint(ckpt, model, ema, opt, step):
    ckpt = Path(ckpt); ckpt.mkdir(parents=True, exist_ok=True)
    torch.save(dict(model=model.state_dict(), ema=ema.model.state_dict(), n=ema.n, step=step), ckpt/'state.pt.tmp')
    torch.save(opt.state_dict(), ckpt/'opt.pt'); os.replace(ckpt/'state.pt.tmp', ckpt/'state.pt')

def save_pipeline(path, vae, text, tok, unet, cfgs, scaling, meta):
    "Write the diffusers-format Stable Diffusion folder (fp16 safetensors) plus `scenes.json`."
    from diffusers import StableDiffusionPipeline, DDIMScheduler
    vae.register_to_config(scaling_factor=scaling)
    pipe = StableDiffusionPipeline(vae=vae.float(), text_encoder=text.float(), tokenizer=tok, unet=unet.float(),
        scheduler=DDIMScheduler(**cfgs['sched']), safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.to(torch.float16).save_pretrained(path, safe_serialization=True)
    save_tokenizer(tok, Path(path)/'tokenizer')
    # weights are stored in fp16 to fit the package; the config asks transformers to load them as fp32 by default
    cfg = Path(path)/'text_encoder'/'config.json'; cfg.write_text(cfg.read_text().replace('"dtype": "float16"', '"dtype": "float32"'))
    (Path(path)/'scenes.json').write_text(json.dumps(meta, indent=1))
    return pipe

class Classifier(nn.Module):
    "A small CNN that names the object in a 64px scene (or a crop resized to 64px)."
    def __init__(self, n_classes=len(OBJECTS), nf=32):
        super().__init__()
        def blk(i,o): return nn.Sequential(nn.Conv2d(i,o,3,padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.Conv2d(o,o,3,padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2))
        self.body = nn.Sequential(blk(3,nf), blk(nf,2*nf), blk(2*nf,4*nf), blk(4*nf,4*nf), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(4*nf, n_classes)
    def forward(self, x): return self.head(self.body(x))

def train_classifier(imgs, labels, steps=1500, bs=128, lr=2e-3, device='cpu', log=None):
    "Train `Classifier` on single-object scenes, with random crops around the object so it also reads crops."
    device = torch.device(device); m = Classifier().to(device).train()
    opt = torch.optim.AdamW(m.parameters(), lr=lr, weight_decay=1e-4)
    x_all, y_all = to_tensor(imgs), torch.tensor(labels); g = torch.Generator().manual_seed(0)
    for step in range(steps):
        for pg in opt.param_groups: pg['lr'] = lr_at(step, steps, lr, 50)
        idx = torch.randint(len(x_all), (bs,), generator=g)
        x,y = x_all[idx].to(device), y_all[idx].to(device)
        # random zoom-in crop (keeps the centre region), then back to full size
        s = int(torch.randint(40, 65, (1,), generator=g)); ox,oy = torch.randint(0, 65-s, (2,), generator=g).tolist()
        x = F.interpolate(x[:,:,oy:oy+s,ox:ox+s], size=imgs.shape[1:3], mode='bilinear', align_corners=False)
        loss = F.cross_entropy(m(x), y)
        opt.zero_grad(); loss.backward(); opt.step()
        if step%250==0 or step==steps-1: _log(f"classifier step {step} loss {loss.item():.4f}", log)
    return m.eval()

def load_classifier(path, device='cpu'):
    from safetensors.torch import load_file
    m = Classifier(); m.load_state_dict(load_file(str(path))); return m.to(device).eval()

@torch.no_grad()
def classify(clf, imgs):
    "Predicted object names for PIL images or a (B,3,H,W) tensor in [-1,1]."
    if not torch.is_tensor(imgs): imgs = to_tensor(np.stack([np.asarray(i.convert('RGB').resize((64,64))) for i in imgs]))
    dev = next(clf.parameters()).device
    return [list(OBJECTS)[i] for i in clf(imgs.to(dev).float()).argmax(1).tolist()]

@torch.no_grad()
def generation_accuracy(pipe, clf, n_per=16, guidance_scale=7.5, steps=50, seed=0, objects=None, bs=128):
    "Per object, the fraction of images generated from a single-object prompt that `clf` names correctly."
    objects = objects or list(OBJECTS); bgs = list(BACKGROUNDS)
    prompts = [caption([o], bgs[i%len(bgs)]) for o in objects for i in range(n_per)]
    labels = [o for o in objects for i in range(n_per)]
    preds = []
    for i in range(0, len(prompts), bs):
        g = torch.Generator(pipe.device).manual_seed(seed+i)
        ims = pipe(prompts[i:i+bs], num_inference_steps=steps, guidance_scale=guidance_scale, generator=g, output_type='pt').images
        preds += classify(clf, ims*2-1)
    acc = {o: float(np.mean([p==l for p,l in zip(preds,labels) if l==o])) for o in objects}
    return acc, float(np.mean([p==l for p,l in zip(preds,labels)]))

def train_model(out, n_scenes=40000, size=64, vae_steps=2500, vae_bs=128, unet_steps=4000, unet_bs=256, clf_steps=1500, clf_scenes=20000,
                device=None, workers=None, minutes=None, ckpt=None, eval_n=16, log=None):
    "The whole run: tokenizer, scenes, VAE, latents, UNet + text encoder, classifier; writes the pipeline folder and metrics."
    from safetensors.torch import save_file
    t_start = time.time(); deadline = t_start + 60*minutes if minutes else None
    device = torch.device(device or ('cuda' if torch.cuda.is_available() else 'cpu'))
    if device.type=='cuda': torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = True
    out = Path(out); out.mkdir(parents=True, exist_ok=True); log = log or out/'train_log.txt'
    tok = make_tokenizer(); cfgs = configs(size, len(tok), tok.model_max_length)
    t = time.time(); imgs, prompts, _ = make_dataset(n_scenes, size, seed=0, workers=workers)
    held, _, _ = make_dataset(512, size, seed=10_000_000, workers=workers)
    _log(f"{n_scenes} scenes in {time.time()-t:.1f}s", log)
    ckpt = Path(ckpt) if ckpt else out/'checkpoint'
    from diffusers import AutoencoderKL
    t = time.time()
    if (ckpt/'vae').exists(): vae = AutoencoderKL.from_pretrained(ckpt/'vae').to(device).eval(); _log("resumed: VAE from checkpoint", log)
    else:
        vae = train_vae(imgs, vae_steps, vae_bs, device=device, log=log, cfg=cfgs['vae']).eval()
        vae.save_pretrained(ckpt/'vae')
    vae_time = time.time()-t; vae_psnr = psnr(vae, held, device); _log(f"VAE held-out PSNR {vae_psnr:.2f} dB", log)
    mean, std = encode_all(vae, imgs, device)
    scaling = float(1/mean.std())   # SD's scaling factor: unit-variance latents
    ids = tok(prompts, padding='max_length', max_length=tok.model_max_length, truncation=True, return_tensors='pt').input_ids
    t = time.time()
    ema = train_unet(mean, std, ids, unet_steps, unet_bs, scaling=scaling, device=device, log=log, cfgs=cfgs, ckpt=ckpt,
                     deadline=deadline, **resume_state(ckpt, cfgs, log))
    unet_time = time.time()-t
    cimgs, _, clabels = make_dataset(clf_scenes, size, seed=20_000_000, workers=workers, single=True)
    clf = train_classifier(cimgs, clabels, clf_steps, device=device, log=log)
    tst, _, tl = make_dataset(clf_scenes//10, size, seed=30_000_000, workers=workers, single=True)
    clf_acc = float(np.mean([p==list(OBJECTS)[l] for p,l in zip(classify(clf, to_tensor(tst)), tl)]))
    _log(f"classifier accuracy on held-out real scenes {clf_acc:.4f}", log)
    meta = dict(objects=list(OBJECTS), backgrounds=list(BACKGROUNDS), image_size=size, n_scenes=n_scenes)
    pipe = save_pipeline(out/'tiny-sd', vae, ema['text'], tok, ema['unet'], cfgs, scaling, meta)
    (out/'classifier').mkdir(exist_ok=True)
    save_file({k:v.contiguous() for k,v in clf.state_dict().items()}, str(out/'classifier'/'model.safetensors'))
    from diffusers import StableDiffusionPipeline
    pipe = StableDiffusionPipeline.from_pretrained(out/'tiny-sd', torch_dtype=torch.float32).to(device)
    pipe.set_progress_bar_config(disable=True)
    evals = {}
    for gs in (3., 5., 7.5):
        acc, mean_acc = generation_accuracy(pipe, clf, n_per=eval_n, guidance_scale=gs)
        evals[str(gs)] = dict(per_object=acc, mean=mean_acc); _log(f"generation accuracy at g={gs}: {mean_acc:.4f} {acc}", log)
    metrics = dict(device=torch.cuda.get_device_name() if device.type=='cuda' else 'cpu', n_scenes=n_scenes,
                   vae_steps=vae_steps, vae_bs=vae_bs, unet_steps=unet_steps, unet_bs=unet_bs, clf_steps=clf_steps,
                   vae_seconds=vae_time, unet_seconds=unet_time, total_seconds=time.time()-t_start, vae_psnr_db=vae_psnr,
                   classifier_real_accuracy=clf_acc, generation_accuracy=evals, scaling_factor=scaling)
    (out/'metrics.json').write_text(json.dumps(metrics, indent=1))
    return metrics

def main():
    import argparse
    p = argparse.ArgumentParser(description="Train the embedded tiny Stable Diffusion on emoji scenes (CPU or one GPU; resumable).")
    p.add_argument('--out', default=str(Path(__file__).parent/'models'), help="folder for tiny-sd/, classifier/, metrics.json")
    for k,v in dict(n_scenes=40000, vae_steps=3500, vae_bs=128, unet_steps=4000, unet_bs=256, clf_steps=1500, eval_n=16).items():
        p.add_argument('--'+k, type=int, default=v)
    p.add_argument('--minutes', type=float, default=None, help="stop UNet training after this many minutes from the start")
    p.add_argument('--device', default=None); p.add_argument('--workers', type=int, default=None)
    a = p.parse_args()
    print(json.dumps(train_model(**vars(a)), indent=1))

if __name__ == '__main__': main()
