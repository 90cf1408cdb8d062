"""DiffEdit speed at Stable Diffusion 1.5 size: diffusers' StableDiffusionDiffEditPipeline vs ours, one run, one card.

SD-1.5-shaped components with random weights (speed does not depend on the weights), fp16, 512x512, 50 steps,
r = 0.8, n = 10. Prints and writes JSON: median seconds per edit after a warm-up, peak memory, UNet FLOPs per call,
the card's measured fp16 matmul rate and the floor (UNet evaluations x FLOPs / rate).
Usage: python bench/gpu_speed.py [--size 512] [--steps 50] [--reps 3] [--out results.json] [--tiny]
"""
import argparse, json, time, statistics, warnings
import torch
from PIL import Image
warnings.filterwarnings('ignore')

def sd15_pipe(device, dtype, tiny=False):
    from diffusers import StableDiffusionPipeline, UNet2DConditionModel, AutoencoderKL, DDIMScheduler
    from transformers import CLIPTextModel, CLIPTextConfig
    from diffedit.core import embedded_model
    from transformers import CLIPTokenizer
    tok = CLIPTokenizer.from_pretrained(embedded_model()/'tokenizer', model_max_length=77)
    ch, vch, hid, layers = ((320,640,1280,1280), (128,256,512,512), 768, 12) if not tiny else ((32,64,64,64), (32,32,32,32), 64, 1)
    unet = UNet2DConditionModel(sample_size=64, block_out_channels=ch, cross_attention_dim=hid, attention_head_dim=8, layers_per_block=2,
        down_block_types=("CrossAttnDownBlock2D",)*3+("DownBlock2D",), up_block_types=("UpBlock2D",)+("CrossAttnUpBlock2D",)*3,
        norm_num_groups=32)
    vae = AutoencoderKL(block_out_channels=vch, down_block_types=("DownEncoderBlock2D",)*4, up_block_types=("UpDecoderBlock2D",)*4,
                        latent_channels=4, layers_per_block=2, norm_num_groups=32)
    text = CLIPTextModel(CLIPTextConfig(vocab_size=49408, hidden_size=hid, intermediate_size=4*hid, num_hidden_layers=layers,
                                        num_attention_heads=12 if not tiny else 4, max_position_embeddings=77, bos_token_id=0, eos_token_id=1, pad_token_id=1))
    sched = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", clip_sample=False, set_alpha_to_one=False, steps_offset=1)
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text, tokenizer=tok, unet=unet, scheduler=sched, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device, dtype)

def sync(dev):
    if dev.type == 'cuda': torch.cuda.synchronize()

def timed(fn, dev, reps):
    fn(); sync(dev)                                                    # warm-up
    if dev.type == 'cuda': torch.cuda.reset_peak_memory_stats()
    ts = []
    for _ in range(reps):
        t = time.perf_counter(); fn(); sync(dev); ts.append(time.perf_counter()-t)
    mem = torch.cuda.max_memory_allocated()/2**30 if dev.type == 'cuda' else None
    return statistics.median(ts), ts, mem

def main():
    p = argparse.ArgumentParser(); p.add_argument('--size', type=int, default=512); p.add_argument('--steps', type=int, default=50)
    p.add_argument('--reps', type=int, default=3); p.add_argument('--out', default=None); p.add_argument('--tiny', action='store_true')
    a = p.parse_args()
    dev = torch.device('cuda' if torch.cuda.is_available() else 'cpu'); dtype = torch.float16 if dev.type == 'cuda' else torch.float32
    from diffedit.edit import diffedit
    from diffedit.baselines import diffusers_diffedit_pipe, diffusers_diffedit
    pipe = sd15_pipe(dev, dtype, a.tiny); dpipe = diffusers_diffedit_pipe(pipe)
    img = Image.new('RGB', (a.size, a.size), (120, 180, 90))
    ref, q = "a horse on grass", "a zebra on grass"
    res = dict(device=torch.cuda.get_device_name() if dev.type == 'cuda' else 'cpu', size=a.size, steps=a.steps, r=0.8, n=10, dtype=str(dtype))
    # FLOPs of one UNet call (per sample)
    from torch.utils.flop_counter import FlopCounterMode
    lat = torch.randn(1, 4, a.size//8, a.size//8, device=dev, dtype=dtype); emb = torch.randn(1, 77, pipe.unet.config.cross_attention_dim, device=dev, dtype=dtype)
    with torch.no_grad(), FlopCounterMode(display=False) as fc: pipe.unet(lat, torch.tensor(500, device=dev), emb)
    res['unet_gflop_per_sample'] = fc.get_total_flops()/1e9
    if dev.type == 'cuda':
        x = torch.randn(8192, 8192, device=dev, dtype=dtype); sync(dev)
        for _ in range(3): x @ x
        sync(dev); t = time.perf_counter()
        for _ in range(20): x @ x
        sync(dev); res['matmul_tflops'] = 20*2*8192**3/(time.perf_counter()-t)/1e12
    def theirs(): diffusers_diffedit(dpipe, img, ref, q, r=0.8, steps=a.steps, output_type='pil')
    def ours(): diffedit(pipe, img, ref, q, r=0.8, n=10, steps=a.steps)
    res['diffusers_s'], res['diffusers_runs'], res['diffusers_peak_gib'] = timed(theirs, dev, a.reps)
    res['ours_s'], res['ours_runs'], res['ours_peak_gib'] = timed(ours, dev, a.reps)
    res['ratio_ours_over_diffusers'] = res['ours_s']/res['diffusers_s']
    k = round(0.8*a.steps)
    res['unet_evals'] = dict(diffusers=4*10 + 2*k + 2*k, ours=2*10 + k + 2*k)
    if 'matmul_tflops' in res:
        res['floor_s_ours'] = res['unet_evals']['ours']*res['unet_gflop_per_sample']/1e3/res['matmul_tflops']
    print(json.dumps(res, indent=1))
    if a.out: open(a.out, 'w').write(json.dumps(res, indent=1))

if __name__ == '__main__': main()
