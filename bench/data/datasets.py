"""Built-in datasets, registered lazily in :data:`bench.core.registries.DATASETS`.

A built-in entry's target is a callable returning the dataset folder (images plus ``manifest.csv``);
an adapter entry's (``adapter=True``) is ``rows(root) -> list[Row]`` for a published dataset's own
layout, with the dataset's card as metadata. Importing this module imports nothing heavy.
"""

from __future__ import annotations

from bench.core.registries import DATASETS

DATASETS.add(
    "demo",
    "bench.data.demo_data:demo_dataset_path",
    description=(
        "Synthetic demo (~480 128x128 PNGs, built offline on first use and cached): procedural 'camera' "
        "scenes as real, and three fake classes each with one artefact (upsampler checkerboard, "
        "smooth without sensor noise, band-limited with an 8px grid). Not a measure of real-world performance."
    ),
    synthetic=True,
)


# The field's published datasets: adapters that read each one's own layout in place (bench.data.adapters).
# ``hf`` names the Hugging Face repositories `bench data fetch` downloads (with ``hf_files`` patterns and
# ``unzip`` when the repository holds archives); ``get`` is what to do by hand otherwise. Sizes are
# approximate, from the datasets' pages.
PUBLISHED = {
    "forensynths-train": dict(
        target="bench.data.adapters.forensynths:train_rows",
        description="CNNDet's ProGAN training data: 20 LSUN classes, 0_real/1_fake in train/ and val/",
        generators="progan", size="~720K images (train) + 8K (val), ~70 GB",
        licence="CC BY-NC-SA 4.0 (CNNDetection)", paper="Wang et al., CVPR 2020, arXiv:1912.11035",
        split="official train/val; no test (use with --train-on, test on forensynths-test)",
        get="https://github.com/PeterWang512/CNNDetection#training-set : download trainset.zip and valset.zip "
            "(Google Drive/Box links in that README) and unzip into one folder as train/ and val/"),
    "forensynths-test": dict(
        target="bench.data.adapters.forensynths:test_rows",
        description="CNNDet's test set: 13 CNN generators, <generator>/[<class>/]{0_real,1_fake}",
        generators=", ".join(("progan", "stylegan", "stylegan2", "biggan", "cyclegan", "stargan", "gaugan", "crn",
                              "imle", "seeingdark", "san", "deepfake", "whichfaceisreal")),
        size="~80K images, ~19 GB", licence="CC BY-NC-SA 4.0 (CNNDetection)",
        paper="Wang et al., CVPR 2020, arXiv:1912.11035", split="test only",
        hf="sywang/CNNDetection", hf_files=["CNN_synth_testset.zip"], unzip=True,
        get="hf datasets sywang/CNNDetection, file CNN_synth_testset.zip (unzip)"),
    "univfd-diffusion": dict(
        target="bench.data.adapters.univfd:diffusion_rows",
        description="UnivFD's diffusion test sets: diffusion_datasets/<generator>/1_fake, laion|imagenet/0_real",
        generators="guided, ldm_200, ldm_200_cfg, ldm_100, glide_100_27, glide_50_27, glide_100_10, dalle",
        size="8K fakes + 2K reals", licence="not stated (UniversalFakeDetect, research use)",
        paper="Ojha et al., CVPR 2023, arXiv:2302.10174", split="test only",
        get="https://github.com/Yuheng-Li/UniversalFakeDetect#data : download diffusion_datasets (Google Drive) "
            "and unzip"),
    "genimage": dict(
        target="bench.data.adapters.genimage:rows",
        description="GenImage: 8 generators on ImageNet classes, <archive>/{train,val}/{ai,nature}",
        generators="sdv14, sdv15, midjourney, wukong, adm, glide, vqdm, biggan",
        size="~1.35M fakes + 1.33M reals, ~470 GB", licence="not stated (reals: ImageNet terms)",
        paper="Zhu et al., NeurIPS 2023 D&B, arXiv:2306.08571",
        split="official train; official val used as test; val = a seeded fifth of train",
        get="https://github.com/GenImage-Dataset/GenImage : Google Drive or Baidu links; join the split zips "
            "(zip -s 0 ... && unzip) per generator into one folder"),
    "synthbuster": dict(
        target="bench.data.adapters.synthbuster:rows",
        description="Synthbuster: RAISE-1k photographs and 9 diffusion models prompted from them (grouped by RAISE id)",
        generators="dalle2, dalle3, firefly, glide, midjourney-v5, stable-diffusion-1-3, stable-diffusion-1-4, "
                   "stable-diffusion-2, stable-diffusion-xl",
        size="9K fakes + 1K reals, ~15 GB", licence="synthbuster: see Zenodo record; RAISE: research only",
        paper="Bammey, IEEE OJSP 2023, doi:10.1109/OJSP.2023.3337714", split="test only",
        get="https://zenodo.org/records/10066460 (synthbuster.zip); RAISE-1k photographs as PNG, e.g. "
            "https://www.grip.unina.it/download/prog/DMimageDetection/real_RAISE_1k.zip, unzipped next to the "
            "generator folders"),
    "defactify4": dict(
        target="bench.data.adapters.prompt_parquet:defactify_rows",
        description="Defactify 4 (MS COCOAI): COCO captions, the COCO image and 5 generators per caption",
        generators="sd21, sdxl, sd3, dalle3, midjourney6", size="7K prompts x 6 images, ~4 GB",
        licence="see the Hugging Face card", paper="Defactify 4 @ AAAI 2025 (MS COCOAI)",
        split="the labelled training release, split seeded by prompt (validation/test copies are unlabelled)",
        hf="NasrinImp/Defactify4_Train",
        get="hf datasets NasrinImp/Defactify4_Train (Parquet)"),
    "elsa-d3": dict(
        target="bench.data.adapters.prompt_parquet:d3_rows",
        description="ELSA D3: LAION prompts, 4 generators per prompt; reals downloaded from the url column to real/<id>.*",
        generators="deepfloyd-if, sd14, sd21, sdxl (image_gen0..3)",
        size="~2.3M prompts x 4 images, ~2.6 TB", licence="see the Hugging Face card (LAION reals: their own terms)",
        paper="Baraldi et al., CoDE, ECCV 2024, arXiv:2407.20337",
        split="official train; official validation used as test; val = a fifth of train",
        hf="elsaEU/ELSA_D3",
        get="hf datasets elsaEU/ELSA_D3 (Parquet; partial downloads work: pass --to and stop when enough), then "
            "fetch each row's url into real/<id>.<ext>"),
    "chameleon": dict(
        target="bench.data.adapters.chameleon:rows",
        description="Chameleon: AI images that fooled human annotators, and real photos, test/{0_real,1_fake}",
        generators="chameleon (not labelled)", size="~26K images (14.9K real, 11.2K fake)",
        licence="not stated (AIDE, research use)", paper="Yan et al., ICLR 2025, arXiv:2406.19435",
        split="test only",
        get="https://github.com/shilinyan99/AIDE#chameleon : download and unzip"),
    "wildrf": dict(
        target="bench.data.adapters.wildrf:rows",
        description="WildRF: real/fake images from Reddit, Twitter, Facebook; test per platform",
        generators="reddit, twitter, facebook (test platforms; train/val fakes: wildrf)",
        size="~4K images", licence="not stated (LaDeDa, research use)",
        paper="Cavia et al., arXiv:2406.09398", split="official train/val/test",
        get="https://github.com/barcavia/RealTime-DeepfakeDetection-in-the-RealWorld : WildRF link; unzip"),
    "aigcdetect-test": dict(
        target="bench.data.adapters.forensynths:aigcdetect_test_rows",
        description="AIGCDetectBenchmark's test set: 16 GAN and diffusion generators, CNNDet layout",
        generators="every <generator>/ folder (progan ... stable_diffusion_v_1_5, wukong, DALLE2)",
        size="~120K images", licence="not stated (research use)",
        paper="Zhong et al. (PatchCraft), arXiv:2311.12397", split="test only",
        get="https://github.com/Ekko-zn/AIGCDetectBenchmark : test set link; unzip"),
}

for _name, _card in PUBLISHED.items():
    DATASETS.add(_name, _card.pop("target"), adapter=True, **_card)
