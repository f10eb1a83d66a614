"""The methods of the source papers, registered lazily into bench.core.registries.DETECTORS.

Metadata given here is what ``bench list detectors`` shows without importing model
code: ``weights`` names components of the weights catalog (bench/weights/catalog.py),
``test=True`` marks tiny randomly initialised variants for tests (never in 'all'), ``smoke``
says why the fast profile cannot be smoke-sized for a CPU (``bench list detectors -v`` prints it).

May import: bench.core, bench.data, bench.weights, bench.nn and detectors itself; never bench.run,
bench.report or bench.cli (tests/test_layering.py).
"""

from bench.core.registries import DETECTORS

VIT_L14_SMOKE = ("the frozen CLIP ViT-L/14 at 224 px is the method and costs seconds per image on a CPU "
                 "(README, 'Detector cost'), so even the smoke set takes minutes; use a GPU")
VAE_SMOKE = ("the error channel runs the Stable Diffusion VAE (the method's) at 224 px on every image, seconds "
             "each on a CPU (README, 'Detector cost'); effnet_mc.rgb and effnet_mc.rgb_fft have no VAE")

# -- weight-free ------------------------------------------------------------------------------
DETECTORS.add("spectral", "detectors.spectral:SpectralDetector", family="frequency",
              summary="azimuthal log power spectrum + logistic regression", weights=(), trains=True, gpu="no",
              tasks=("binary", "attribution"))
DETECTORS.add("test_cnn", "detectors.tiny_cnn:TinyCNN", family="test",
              summary="tiny CNN trained from scratch (tests and smoke runs only)", weights=(), trains=True,
              gpu="optional", tasks=("binary", "attribution"), test=True, profile="fast")

# -- CLIP family (NYCU CLIP+SVM, CLIP fine-tune, CLIP image+text MLP) ----------------------------
DETECTORS.add("clip_svm", "detectors.clip_svm:ClipSVM", family="clip",
              summary="NYCU (Defactify 4): frozen CLIP ViT-B/16 features, L2-normalised, RBF SVM",
              weights=("clip_vit_b16",), trains=True, gpu="optional", tasks=("binary", "attribution"))
DETECTORS.add("clip_finetune", "detectors.clip_finetune:ClipFinetune", family="clip",
              summary="CLIP ViT-B/16 image encoder fine-tuned end to end with a linear head",
              weights=("clip_vit_b16",), trains=True, gpu="recommended", tasks=("binary", "attribution"))
DETECTORS.add("clip_text_mlp", "detectors.clip_text_mlp:ClipTextMLP", family="clip",
              summary="CLIP ViT-L/14 image+text embeddings, 3-layer MLP, CVaR + AUC loss, SAM",
              weights=("clip_vit_l14",), trains=True, gpu="optional", tasks=("binary",), smoke=VIT_L14_SMOKE)
DETECTORS.add("test_clip.svm", "detectors.clip_svm:ClipSVM", family="test",
              summary="clip_svm on a tiny random CLIP (tests and smoke runs only)", weights=(), trains=True,
              gpu="no", tasks=("binary", "attribution"), test=True, profile="fast",
              kwargs={"backbone": "test_tiny_clip", "c_grid": (10.0, 1.0), "gamma_grid": (1.0, "scale")})
DETECTORS.add("test_clip.finetune", "detectors.clip_finetune:ClipFinetune", family="test",
              summary="clip_finetune on a tiny random CLIP (tests and smoke runs only)", weights=(), trains=True,
              gpu="no", tasks=("binary", "attribution"), test=True, profile="fast",
              kwargs={"backbone": "test_tiny_clip", "epochs": 2, "lr": 1e-3, "batch_size": 16})
DETECTORS.add("test_clip.text_mlp", "detectors.clip_text_mlp:ClipTextMLP", family="test",
              summary="clip_text_mlp on a tiny random CLIP (tests and smoke runs only)", weights=(), trains=True,
              gpu="no", tasks=("binary",), test=True, profile="fast",
              kwargs={"backbone": "test_tiny_clip", "hidden": 64, "epochs": 3, "batch_size": 16})
# -- end CLIP family ---------------------------------------------------------------------------

# -- CNN family (NYCU multi-channel EfficientNet-B0) ----------------------------------------------
DETECTORS.add("effnet_mc", "detectors.effnet_mc:EffNetMC", family="cnn",
              summary="NYCU: EfficientNet-B0, 5 channels: RGB + VAE reconstruction error + FFT spectrum",
              weights=("effnet_b0", "sd_vae_sd1"), trains=True, gpu="recommended", tasks=("binary", "attribution"),
              kwargs={"channels": "rgb_err_fft"}, smoke=VAE_SMOKE)
DETECTORS.add("effnet_mc.rgb", "detectors.effnet_mc:EffNetMC", family="cnn",
              summary="effnet_mc ablation: RGB only", weights=("effnet_b0",), trains=True, gpu="recommended",
              tasks=("binary", "attribution"), kwargs={"channels": "rgb"})
DETECTORS.add("effnet_mc.rgb_fft", "detectors.effnet_mc:EffNetMC", family="cnn",
              summary="effnet_mc ablation: RGB + FFT spectrum", weights=("effnet_b0",), trains=True,
              gpu="recommended", tasks=("binary", "attribution"), kwargs={"channels": "rgb_fft"})
DETECTORS.add("effnet_mc.rgb_err", "detectors.effnet_mc:EffNetMC", family="cnn",
              summary="effnet_mc ablation: RGB + VAE reconstruction error", weights=("effnet_b0", "sd_vae_sd1"),
              trains=True, gpu="recommended", tasks=("binary", "attribution"), kwargs={"channels": "rgb_err"},
              smoke=VAE_SMOKE)
DETECTORS.add("test_effnet_mc", "detectors.effnet_mc:EffNetMC", family="test",
              summary="tiny random effnet_mc: timm test_efficientnet, tiny VAE, 32 px (tests only)", weights=(),
              trains=True, gpu="optional", tasks=("binary", "attribution"), test=True, profile="fast",
              kwargs={"channels": "rgb_err_fft", "arch": "test_efficientnet", "size": 32, "pretrained": False,
                      "vae": "tiny", "epochs": 2, "batch_size": 16})
# -- end CNN family ----------------------------------------------------------------------------
