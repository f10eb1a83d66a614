"""Published baselines, registered lazily into bench.core.registries.DETECTORS (see detectors/__init__.py).

May import: bench.core, bench.data, bench.weights, bench.nn and baselines itself; never bench.run,
bench.report or bench.cli (tests/test_layering.py).
"""

from bench.core.registries import AUTOENCODERS, DETECTORS

# registry meta ``smoke``: why a fast profile cannot be smoke-sized for a CPU (see detectors/__init__.py)
VIT_L14_SMOKE = ("the frozen CLIP ViT-L/14 at 224 px is the method and costs seconds per image on a CPU "
                 "(README, 'Detector cost'), so even the smoke set takes minutes; use a GPU")
AEROBLADE_SMOKE = ("its three full latent-diffusion autoencoders at the image's own size are the method, about "
                   "5 s per 128 px demo image on 2 CPU cores (README, 'Detector cost'): minutes for the smoke set; "
                   "the single-autoencoder variants take a third of that, the tiny-autoencoder ones a tenth")

# -- CNN baselines (CNNDet, NPR) -----------------------------------------------------------------
DETECTORS.add("cnndet.p05", "baselines.cnndet:CNNDet", family="cnn",
              summary="Wang et al. 2020: ResNet-50, blur+JPEG augmentation with p=0.5", weights=("resnet50",),
              trains=True, gpu="recommended", tasks=("binary",), kwargs={"p": 0.5})
DETECTORS.add("cnndet.p01", "baselines.cnndet:CNNDet", family="cnn",
              summary="Wang et al. 2020: ResNet-50, blur+JPEG augmentation with p=0.1", weights=("resnet50",),
              trains=True, gpu="recommended", tasks=("binary",), kwargs={"p": 0.1})
DETECTORS.add("npr", "baselines.npr:NPR", family="cnn",
              summary="Tan et al. 2024: neighbouring-pixel relationships + small ResNet from scratch", weights=(),
              trains=True, gpu="optional", tasks=("binary",))
DETECTORS.add("test_cnndet", "baselines.cnndet:CNNDet", family="test",
              summary="tiny random CNNDet: small ResNet, 32 px crops (tests only)", weights=(), trains=True,
              gpu="optional", tasks=("binary",), test=True, profile="fast",
              kwargs={"p": 0.5, "arch": "test_resnet", "load": 40, "crop": 32, "pretrained": False, "epochs": 2,
                      "batch_size": 16})
DETECTORS.add("test_npr", "baselines.npr:NPR", family="test",
              summary="tiny NPR: width 8, one bottleneck per stage, 32 px crops (tests only)", weights=(),
              trains=True, gpu="optional", tasks=("binary",), test=True, profile="fast",
              kwargs={"width": 8, "blocks": (1, 1), "crop": 32, "epochs": 2, "batch_size": 16})
# -- end CNN baselines ---------------------------------------------------------------------------

# -- CLIP baselines (UnivFD, OCC-CLIP) -----------------------------------------------------------
DETECTORS.add("univfd", "baselines.univfd:UnivFD", family="clip",
              summary="Ojha et al. 2023: linear probe on frozen CLIP ViT-L/14 image features",
              weights=("clip_vit_l14",), trains=True, gpu="optional", tasks=("binary",), smoke=VIT_L14_SMOKE)
DETECTORS.add("occ_clip", "baselines.occ_clip:OCCClip", family="clip",
              summary="OCC-CLIP: learned prompt context on frozen CLIP ViT-B/16, one-vs-rest per source",
              weights=("clip_vit_b16",), trains=True, gpu="optional", tasks=("binary", "attribution"))
DETECTORS.add("test_clip.univfd", "baselines.univfd:UnivFD", family="test",
              summary="univfd on a tiny random CLIP (tests and smoke runs only)", weights=(), trains=True,
              gpu="no", tasks=("binary",), test=True, profile="fast",
              kwargs={"backbone": "test_tiny_clip", "epochs": 3, "lr": 1e-3, "batch_size": 16})
DETECTORS.add("test_clip.occ_clip", "baselines.occ_clip:OCCClip", family="test",
              summary="occ_clip on a tiny random CLIP (tests and smoke runs only)", weights=(), trains=True,
              gpu="no", tasks=("binary", "attribution"), test=True, profile="fast",
              kwargs={"backbone": "test_tiny_clip", "n_ctx": 4, "shots": 8, "epochs": 3, "lr": 1e-2,
                      "batch_size": 8})
# -- end CLIP baselines ---------------------------------------------------------------------------

# -- released checkpoints (the authors' weights, no training; baselines/released.py) ---------------
DETECTORS.add("cnndet.released", "baselines.released:ReleasedCNNDet", family="cnn",
              summary="CNNDetection's released ResNet-50 blur_jpg_prob0.5 (no training)",
              weights=("cnndet_blur_jpg_p05",), trains=False, gpu="recommended", tasks=("binary",),
              kwargs={"component": "cnndet_blur_jpg_p05"})
DETECTORS.add("cnndet.released_p01", "baselines.released:ReleasedCNNDet", family="cnn",
              summary="CNNDetection's released ResNet-50 blur_jpg_prob0.1 (no training)",
              weights=("cnndet_blur_jpg_p01",), trains=False, gpu="recommended", tasks=("binary",),
              kwargs={"component": "cnndet_blur_jpg_p01"})
DETECTORS.add("univfd.released", "baselines.released:ReleasedUnivFD", family="clip",
              summary="UniversalFakeDetect's released fc_weights.pth on CLIP ViT-L/14 (no training)",
              weights=("clip_vit_l14", "univfd_fc"), trains=False, gpu="optional", tasks=("binary",),
              smoke=VIT_L14_SMOKE)
DETECTORS.add("npr.released", "baselines.released:ReleasedNPR", family="cnn",
              summary="NPR's released NPR.pth (no training)", weights=("npr_released",), trains=False,
              gpu="optional", tasks=("binary",))
# -- end released checkpoints --------------------------------------------------------------------------

# -- AEROBLADE -------------------------------------------------------------------------------------
DETECTORS.add("aeroblade", "baselines.aeroblade:Aeroblade", family="reconstruction",
              summary="Ricker et al. 2024: max over SD1/SD2/Kandinsky autoencoders of -LPIPS(x, AE(x))",
              weights=("sd_vae_sd1", "sd_vae_sd2", "kandinsky21_movq", "lpips_vgg"), trains=False,
              gpu="recommended", tasks=("binary",), kwargs={"autoencoders": ("sd1", "sd2", "kd21")},
              smoke=AEROBLADE_SMOKE)
DETECTORS.add("aeroblade.sd1", "baselines.aeroblade:Aeroblade", family="reconstruction",
              summary="AEROBLADE with the SD 1 autoencoder only", weights=("sd_vae_sd1", "lpips_vgg"),
              trains=False, gpu="recommended", tasks=("binary",), kwargs={"autoencoders": ("sd1",)})
DETECTORS.add("aeroblade.sd2", "baselines.aeroblade:Aeroblade", family="reconstruction",
              summary="AEROBLADE with the SD 2 autoencoder only", weights=("sd_vae_sd2", "lpips_vgg"),
              trains=False, gpu="recommended", tasks=("binary",), kwargs={"autoencoders": ("sd2",)})
DETECTORS.add("aeroblade.kd21", "baselines.aeroblade:Aeroblade", family="reconstruction",
              summary="AEROBLADE with the Kandinsky 2.1 MoVQ only", weights=("kandinsky21_movq", "lpips_vgg"),
              trains=False, gpu="recommended", tasks=("binary",), kwargs={"autoencoders": ("kd21",)})
for _tae, _what in (("taef2", "FLUX.2"), ("taef1", "FLUX.1"), ("taesd3", "SD 3"), ("taesdxl", "SDXL"),
                    ("taesd", "SD 1/2")):
    DETECTORS.add(f"aeroblade.{_tae}", "baselines.aeroblade:Aeroblade", family="reconstruction",
                  summary=f"AEROBLADE with the tiny {_what} autoencoder {_tae.upper()} (5 MB; CPU-friendly)",
                  weights=(_tae, "lpips_vgg"), trains=False, gpu="optional", tasks=("binary",),
                  kwargs={"autoencoders": (_tae,)})
DETECTORS.add("test_aeroblade", "baselines.aeroblade:Aeroblade", family="test",
              summary="AEROBLADE with two tiny random autoencoders (KL + VQ) and a random VGG (tests only)",
              weights=(), trains=False, gpu="no", tasks=("binary",), test=True, profile="fast",
              kwargs={"autoencoders": ("test_kl", "test_vq"), "lpips_backbone": "random"})
# -- end AEROBLADE ---------------------------------------------------------------------------------

# -- autoencoder round trips for the vae_roundtrip:AE perturbation (baselines/ae_roundtrip.py) --------------
# name -> weights component (None: random weights, tests only); the same names as aeroblade_models.AUTOENCODERS
for _ae, _component in (("sd1", "sd_vae_sd1"), ("sd2", "sd_vae_sd2"), ("kd21", "kandinsky21_movq"),
                        ("taesd", "taesd"), ("taesdxl", "taesdxl"), ("taesd3", "taesd3"), ("taef1", "taef1"),
                        ("taef2", "taef2"), ("test_kl", None), ("test_vq", None), ("test_tiny", None)):
    AUTOENCODERS.add(_ae, "baselines.ae_roundtrip:load_roundtrip", component=_component, test=_component is None)
