"""The methods of the source papers, registered lazily into bench.registries.DETECTORS.

Metadata given here is what ``bench list detectors`` shows without importing model
code: ``weights`` names components of the weights catalog (bench/weights_catalog.py),
``test=True`` marks tiny randomly initialised variants for tests (never in 'all').
"""

from bench.registries import DETECTORS

# -- weight-free ------------------------------------------------------------------------------
DETECTORS.add("spectral", "detectors.spectral:SpectralDetector", family="frequency",
              summary="azimuthal log power spectrum + logistic regression", weights=(), trains=True, gpu="no",
              tasks=("binary", "attribution"))
DETECTORS.add("test_cnn", "detectors.tiny_cnn:TinyCNN", family="test",
              summary="tiny CNN trained from scratch (tests and smoke runs only)", weights=(), trains=True,
              gpu="optional", tasks=("binary", "attribution"), test=True)

# -- CLIP family (NYCU CLIP+SVM, CLIP fine-tune, CLIP image+text MLP) ----------------------------
DETECTORS.add("clip_svm", "detectors.clip_svm:ClipSVM", family="clip",
              summary="NYCU (Defactify 4): frozen CLIP ViT-B/16 features, L2-normalised, RBF SVM",
              weights=("clip_vit_b16",), trains=True, gpu="optional", tasks=("binary", "attribution"))
DETECTORS.add("clip_finetune", "detectors.clip_finetune:ClipFinetune", family="clip",
              summary="CLIP ViT-B/16 image encoder fine-tuned end to end with a linear head",
              weights=("clip_vit_b16",), trains=True, gpu="recommended", tasks=("binary", "attribution"))
DETECTORS.add("clip_text_mlp", "detectors.clip_text_mlp:ClipTextMLP", family="clip",
              summary="CLIP ViT-L/14 image+text embeddings, 3-layer MLP, CVaR + AUC loss, SAM",
              weights=("clip_vit_l14",), trains=True, gpu="optional", tasks=("binary",))
# -- end CLIP family ---------------------------------------------------------------------------

# -- CNN family (NYCU multi-channel EfficientNet-B0) ----------------------------------------------
DETECTORS.add("effnet_mc", "detectors.effnet_mc:EffNetMC", family="cnn",
              summary="NYCU: EfficientNet-B0, 5 channels: RGB + VAE reconstruction error + FFT spectrum",
              weights=("effnet_b0", "sd_vae_sd1"), trains=True, gpu="recommended", tasks=("binary", "attribution"),
              kwargs={"channels": "rgb_err_fft"})
DETECTORS.add("effnet_mc.rgb", "detectors.effnet_mc:EffNetMC", family="cnn",
              summary="effnet_mc ablation: RGB only", weights=("effnet_b0",), trains=True, gpu="recommended",
              tasks=("binary", "attribution"), kwargs={"channels": "rgb"})
DETECTORS.add("effnet_mc.rgb_fft", "detectors.effnet_mc:EffNetMC", family="cnn",
              summary="effnet_mc ablation: RGB + FFT spectrum", weights=("effnet_b0",), trains=True,
              gpu="recommended", tasks=("binary", "attribution"), kwargs={"channels": "rgb_fft"})
DETECTORS.add("effnet_mc.rgb_err", "detectors.effnet_mc:EffNetMC", family="cnn",
              summary="effnet_mc ablation: RGB + VAE reconstruction error", weights=("effnet_b0", "sd_vae_sd1"),
              trains=True, gpu="recommended", tasks=("binary", "attribution"), kwargs={"channels": "rgb_err"})
# -- end CNN family ----------------------------------------------------------------------------
