"""Training and evaluation of the Eigen, Puhrsch & Fergus (2014) network (not imported by the package).

Modules: config (the typed training config and its checks), datasets (a package: NYU .mat / sync layout,
KITTI raw + Eigen split, KITTI object frames, synthetic scenes, sampling), augment (the paper's joint
augmentation and the evaluation transform for ground truth), cache (``python -m training.cache``: decode a
training set once into memory-mapped arrays), batch (uint8 batches and the augmentation in batch on the
training device), losses (scale-invariant loss), train (``python -m training.train``), evaluate
(``python -m training.evaluate``), bench_loader and gpu_throughput (measurements).
"""
