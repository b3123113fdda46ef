"""Training of the Eigen et al. (2014) network: coarse stage, then fine stage with the coarse net frozen.

    python -m training.train --config training/configs/nyu.yaml --out runs/nyu
    python -m training.train --config training/configs/nyu.yaml --out runs/nyu --resume
    torchrun --standalone --nproc_per_node 4 -m training.train --config training/configs/nyu.yaml --out runs/nyu

Run folder (``--out``): ``config.yaml`` (resolved), ``checkpoint.pt`` (latest training state: model,
optimizer, step, RNG; written atomically), ``coarse.pt`` (model file after the coarse stage),
``model.pt`` (final model file), ``log.jsonl`` (loss per logged step), ``tb/`` (TensorBoard).  A
folder that already holds a run is never overwritten without ``--overwrite``; ``--resume``
continues it exactly (same samples, same augmentation, same optimiser state).

Sampling is a seeded stream (``training.datasets.StreamBatchSampler``): the run is a function of the
config and the seed only, independent of loader workers, interruptions and (with dropout off, or up
to dropout masks) the number of DDP processes sharing the global batch.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import signal
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np
import yaml
from tqdm import tqdm

from .config import (DEFAULTS, FREE_FORM_KEYS, STAGE_INDEX, TrainConfig, TrainError,  # noqa: F401 (re-exported)
                     resolve_config)
from .utils import apply_overrides, deep_merge, load_yaml_config, profile_from_config


# ---- distributed --------------------------------------------------------------------------------------
class Dist:
    def __init__(self) -> None:
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = int(os.environ.get("RANK", "0"))
        self.local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        self.enabled = self.world > 1

    def init(self, device_type: str) -> None:
        if self.enabled:
            import torch.distributed as dist

            if not dist.is_initialized():
                dist.init_process_group(backend="nccl" if device_type == "cuda" else "gloo")

    @property
    def main(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.enabled:
            import torch.distributed as dist

            dist.barrier()

    def mean(self, value: float) -> float:
        if not self.enabled:
            return value
        import torch
        import torch.distributed as dist

        t = torch.tensor([value], dtype=torch.float64,
                         device="cuda" if dist.get_backend() == "nccl" else "cpu")
        dist.all_reduce(t)
        return float(t.item()) / self.world

    def gather(self, obj: Any) -> List[Any]:
        if not self.enabled:
            return [obj]
        import torch.distributed as dist

        out: List[Any] = [None] * self.world
        dist.all_gather_object(out, obj)
        return out

    def close(self, orderly: bool = True) -> None:
        """Tears the process group down while the interpreter is fully alive: left to interpreter exit,
        Gloo's threads abort the process now and then ("terminate called without an active exception").
        ``orderly``: all ranks finished normally and meet at a barrier first."""
        if self.enabled:
            import gc

            import torch.distributed as dist

            if dist.is_initialized():
                gc.collect()                 # DDP reducers sit in reference cycles that hold the group
                if orderly:
                    dist.barrier()
                dist.destroy_process_group()
                gc.collect()


# ---- run folder ---------------------------------------------------------------------------------------
RUN_FILES = ("checkpoint.pt", "coarse.pt", "model.pt", "log.jsonl", "config.yaml")


def prepare_run_dir(out: Path, resume: bool, overwrite: bool, main: bool) -> Optional[Path]:
    """Returns the checkpoint to resume from (or None). Refuses to clobber an existing run."""
    ckpt = out / "checkpoint.pt"
    existing = [f for f in RUN_FILES if (out / f).exists()]
    if resume:
        if not ckpt.is_file():
            raise TrainError(f"--resume: {ckpt} does not exist (nothing to resume)")
        return ckpt
    if existing and not overwrite:
        raise TrainError(f"run folder {out} already holds a run ({', '.join(existing)}); pass --resume to continue "
                         f"it or --overwrite to start again")
    if existing and overwrite and main:
        for f in existing:
            (out / f).unlink()
        tb = out / "tb"
        if tb.is_dir():
            for ev in tb.glob("events.out.tfevents.*"):
                ev.unlink()
    return None


class RunLog:
    """log.jsonl (rank 0): one JSON object per logged step; on resume, records past the checkpoint are dropped."""

    def __init__(self, path: Path, keep_until: Optional[tuple] = None):
        self.path = path
        if keep_until is not None and path.is_file():
            keep = []
            for ln in path.read_text().splitlines():
                try:
                    r = json.loads(ln)
                except ValueError:
                    continue
                if (STAGE_INDEX.get(r.get("stage"), -1), r.get("step", 0)) <= keep_until:
                    keep.append(ln)
            path.write_text("".join(k + "\n" for k in keep))
        self.f = open(path, "a", encoding="utf-8")

    def write(self, rec: Dict[str, Any]) -> None:
        self.f.write(json.dumps(rec) + "\n")
        self.f.flush()

    def close(self) -> None:
        self.f.close()


@dataclass
class _Knobs:
    """The per-step settings of a stage (read from the config once)."""
    lam: float
    grad_weight: float
    clip: Optional[float]
    log_every: int
    image_every: int
    checkpoint_every: int
    val_every: int
    channels_last: bool
    amp_dtype: Any


@dataclass
class _Stage:
    """One stage's loop state: the networks and optimiser, the step counters, the loss since the last log line."""
    name: str
    model: Any
    net: Any
    opt: Any
    scaler: Any
    start_step: int
    total: int
    remaining: int
    step: int
    res: Dict[str, Any]
    bar: Any = None
    loss_acc: Any = None
    n_acc: int = 0
    t_last: float = 0.0
    s_last: int = 0

    @property
    def last(self) -> bool:
        """This step ends the stage (its samples, or --max-steps)."""
        return self.step == self.total or self.res["steps_run"] == self.remaining


# ---- the trainer ---------------------------------------------------------------------------------------
class Trainer:
    def __init__(self, cfg: Dict[str, Any], out: "str | Path", resume: bool = False, overwrite: bool = False,
                 max_steps: Optional[int] = None, device: Optional[str] = None, progress: Optional[bool] = None):
        import torch

        self.cfg = resolve_config(cfg)          # the resolved dict: config.yaml and the model files' meta
        self.opts = TrainConfig.from_dict(self.cfg)
        self.out = Path(out)
        self.dist = Dist()
        tcfg = self.opts.train
        dev = device or tcfg.device
        if dev == "auto":
            dev = f"cuda:{self.dist.local_rank}" if torch.cuda.is_available() else "cpu"
        self.device = torch.device(dev)
        if self.device.type == "cuda":
            torch.cuda.set_device(self.device)
            torch.backends.cudnn.benchmark = True   # fixed input size: let cuDNN pick the fastest kernels
        self.dist.init(self.device.type)
        self.max_steps = max_steps
        self.progress = tcfg.progress if progress is None else progress
        self.stop_requested = False
        self.stop_signal = 0
        self.resume_from = prepare_run_dir(self.out, resume, overwrite, self.dist.main)
        self.dist.barrier()
        self.profile = profile_from_config(self.opts.profile)
        self.batch_size = tcfg.batch_size
        if self.batch_size % self.dist.world:
            raise TrainError(f"train.batch_size {self.batch_size} is not divisible by the {self.dist.world} processes")
        self.amp = tcfg.amp if self.device.type == "cuda" else None
        if self.amp not in (None, False, "bf16", "fp16"):
            raise TrainError(f"train.amp must be null, bf16 or fp16, got {self.amp!r}")

    # -- data --
    def _datasets(self):
        from .augment import AugmentConfig
        from .datasets import DepthDataset, build_source

        o = self.opts
        dcfg = o.data
        aug = AugmentConfig.from_dict(o.augment)
        gt_resample = o.gt_resample or dcfg.train.get("gt_resample")
        seed = o.train.seed
        on = o.train.augment_on
        if on not in ("auto", "loader", "device"):
            raise TrainError(f"train.augment_on must be auto, loader or device, got {on!r}")
        cache = dcfg.train_cache
        if cache and on == "loader":
            raise TrainError("data.train_cache holds base-resolution frames for train.augment_on: device (or auto)")
        self.batch_aug = None
        if on == "device" or (on == "auto" and cache):
            from .batch import BatchAugment, FrameBatches, frames_from_config

            frames, repeat = frames_from_config(dcfg.train, self.profile, gt_resample, cache)
            self.train_ds = FrameBatches(frames, self.profile, aug, seed=seed, repeat=repeat)
            self.batch_aug = BatchAugment(self.profile, self.device)
        else:
            train_src = build_source(dcfg.train)
            self.train_ds = DepthDataset(train_src, self.profile, aug, gt_resample, seed=seed)
        self.val_src = build_source(dcfg.val) if dcfg.val else None
        fam = dcfg.val_family
        if fam is None and dcfg.val:
            t = dcfg.val.get("type", "")
            fam = "nyu" if t.startswith("nyu") else "kitti" if t.startswith("kitti") else "synthetic"
        self.val_family = fam

    def _loader(self, sampler):
        import torch
        from torch.utils.data import DataLoader

        from .datasets import worker_init

        w = self.opts.train.workers
        kw: Dict[str, Any] = {}
        if w > 0:
            kw = {"worker_init_fn": worker_init, "prefetch_factor": int(self.opts.train.prefetch_factor),
                  "persistent_workers": False}
        # its own generator: creating the iterator must not draw from the global RNG (dropout), or a
        # resumed run would diverge from an uninterrupted one
        gen = torch.Generator().manual_seed(self.opts.train.seed)
        if self.batch_aug is not None:   # one uint8 batch per sampler element (collated in the worker)
            return DataLoader(self.train_ds, batch_size=None, sampler=sampler, num_workers=w, generator=gen,
                              pin_memory=self.device.type == "cuda", **kw)
        return DataLoader(self.train_ds, batch_sampler=sampler, num_workers=w, generator=gen,
                          pin_memory=self.device.type == "cuda", **kw)

    # -- model / optimiser --
    def _build_model(self):
        import torch

        from mono_depth_ros.model import EigenDepthNet

        torch.manual_seed(self.opts.train.seed)
        model = EigenDepthNet(self.profile, stage="fine")
        icfg = self.opts.init
        if icfg.model:
            from mono_depth_ros.checkpoint import read_model_file

            payload = read_model_file(icfg.model)
            sd = {k: v.float() if v.is_floating_point() else v for k, v in payload["state_dict"].items()}
            model.load_state_dict(sd, strict=True)
        if icfg.alexnet:
            sd = torch.load(icfg.alexnet, map_location="cpu", weights_only=True)
            model.load_alexnet_conv(sd.get("state_dict", sd), strict_shapes=False)
        model.to(self.device)
        if self.opts.train.channels_last and self.device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        return model

    def _optimizer(self, model, stage: str):
        import torch

        ocfg = self.opts.optim
        groups = model.param_groups(stage, ocfg.scaled_lrs())
        return torch.optim.SGD(groups, lr=groups[0]["lr"], momentum=ocfg.momentum, weight_decay=ocfg.weight_decay)

    def _set_stage(self, model, stage: str) -> None:
        if stage == "coarse":
            model.freeze_coarse(False)
            for p in model.fine.parameters():
                p.requires_grad_(False)
        else:
            model.freeze_coarse(True)
            for p in model.coarse.parameters():
                p.grad = None            # the coarse stage's last gradients (~280 MB at NYU size) are not needed
            for p in model.fine.parameters():
                p.requires_grad_(True)
        model.stage = stage
        model.train()

    # -- checkpoints --
    def _rng_state(self) -> Dict[str, Any]:
        import torch

        st = {"torch": torch.get_rng_state()}
        if self.device.type == "cuda":
            st["cuda"] = torch.cuda.get_rng_state(self.device)
        return st

    def save_checkpoint(self, model, opt, scaler, stage: str, step: int, done: List[str]) -> None:
        from mono_depth_ros.checkpoint import save_model

        rngs = self.dist.gather(self._rng_state())
        if not self.dist.main:
            return
        state = {"stage": stage, "step": step, "done": list(done), "world_size": self.dist.world,
                 "samples": step * self.batch_size}
        extra = {"optimizer": opt.state_dict(), "rng": rngs, "train_state": state}
        if scaler is not None:
            extra["scaler"] = scaler.state_dict()
        trained_fine = (stage == "fine" and step > 0) or "fine" in done
        save_model(model, self.out / "checkpoint.pt", stage="fine" if trained_fine else "coarse",
                   meta={"config": self.cfg, "train_state": state}, overwrite=True, extra=extra)

    def _install_signals(self):
        def handler(signum, _frame):
            if self.stop_requested:
                raise KeyboardInterrupt
            self.stop_requested = True
            self.stop_signal = int(signum)
            print(f"\nsignal {signum}: stopping after this step and saving a checkpoint (again to abort)",
                  file=sys.stderr)

        old = {}
        if hasattr(signal, "SIGTERM"):
            with contextlib.suppress(ValueError):  # not in the main thread
                old[signal.SIGTERM] = signal.signal(signal.SIGTERM, handler)
                old[signal.SIGINT] = signal.signal(signal.SIGINT, handler)
        return old

    # -- main --
    def run(self) -> Dict[str, Any]:
        """The run: data and model, restore (--resume), the run folder's outputs, then the stages."""
        import torch

        tcfg = self.opts.train
        self._datasets()
        model = self._build_model()
        ckpt, start_stage, start_step, done = self._restore(model)
        self._open_outputs(start_stage, start_step)
        # dropout masks differ per rank (as they would on one process across the batch)
        torch.manual_seed(tcfg.seed + 1 + 1000 * self.dist.rank)
        old_handlers = self._install_signals()
        try:
            summary = self._run_stages(model, ckpt, start_stage, start_step, done)
        finally:
            for s, h in old_handlers.items():
                with contextlib.suppress(ValueError):
                    signal.signal(s, h)
            if self.writer is not None:
                self.writer.close()
            if self.log is not None:
                self.log.close()
            self.dist.barrier()
        summary["model_obj"] = model
        summary["signal"] = self.stop_signal if summary["interrupted"] else 0
        return summary

    def _restore(self, model) -> Tuple[Optional[Dict[str, Any]], Optional[str], int, List[str]]:
        """--resume: the checkpoint's weights into ``model``; returns (checkpoint, stage, step, stages done)."""
        from mono_depth_ros.checkpoint import ModelFileError, read_model_file

        if self.resume_from is None:
            return None, None, 0, []
        try:
            ckpt = read_model_file(self.resume_from)
        except ModelFileError as exc:
            raise TrainError(f"--resume: {exc}; the run cannot continue from it (start again with --overwrite, "
                             "or restore the file)") from None
        if "train_state" not in ckpt:
            raise TrainError(f"{self.resume_from} is a model file without training state; cannot resume")
        sd = {k: v.float() if v.is_floating_point() else v for k, v in ckpt["state_dict"].items()}
        model.load_state_dict(sd, strict=True)
        ts = ckpt["train_state"]
        if ts.get("world_size", 1) != self.dist.world and self.dist.main:
            print(f"note: resuming a {ts.get('world_size')}-process run with {self.dist.world} processes "
                  "(same samples; dropout masks differ)", file=sys.stderr)
        return ckpt, ts["stage"], int(ts["step"]), list(ts["done"])

    def _open_outputs(self, start_stage: Optional[str], start_step: int) -> None:
        """Rank 0: the run folder, its config.yaml, log.jsonl (cut at the checkpoint) and TensorBoard writer."""
        if self.dist.main:
            self.out.mkdir(parents=True, exist_ok=True)

            (self.out / "config.yaml").write_text(yaml.safe_dump(self.cfg, sort_keys=False))
        self.log: Any = RunLog(self.out / "log.jsonl",
                               keep_until=(STAGE_INDEX[start_stage], start_step) if start_stage else None) \
            if self.dist.main else None
        self.writer: Any = None
        if self.dist.main and self.opts.train.tensorboard:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.out / "tb"))

    def _run_stages(self, model, ckpt: Optional[Dict[str, Any]], start_stage: Optional[str], start_step: int,
                    done: List[str]) -> Dict[str, Any]:
        """The configured stages not yet done; coarse.pt after the coarse stage, model.pt at the end."""
        from mono_depth_ros.checkpoint import save_model

        cfg = self.cfg
        summary: Dict[str, Any] = {"stages": {}, "interrupted": False}
        steps_run = 0
        for stage in self.opts.train.stages:
            if stage in done:
                continue
            first = start_stage == stage
            res = self._run_stage(model, stage, start_step if first else 0,
                                  ckpt if first else None, done, steps_run)
            steps_run += res["steps_run"]
            summary["stages"][stage] = res
            if res["interrupted"]:
                summary["interrupted"] = True
                break
            done.append(stage)
            if self.dist.main and stage == "coarse":
                save_model(model, self.out / "coarse.pt", stage="coarse",
                           meta={"config": cfg, "samples": res["samples"]}, overwrite=True)
            ckpt = None
        if not summary["interrupted"] and self.dist.main:
            final_stage = "fine" if "fine" in done else "coarse"
            save_model(model, self.out / "model.pt", stage=final_stage,
                       meta={"config": cfg, "stages": done, "profile": self.profile.name},
                       overwrite=True, half=self.opts.export.half)
            summary["model"] = str(self.out / "model.pt")
        return summary

    def _run_stage(self, model, stage: str, start_step: int, ckpt: Optional[Dict[str, Any]], done: List[str],
                   steps_before: int) -> Dict[str, Any]:
        """One stage: restore (optimiser, RNG, scaler), then train steps (each: step, log, validate+checkpoint)
        until the stage's samples, --max-steps or a stop signal; a checkpoint at the end."""
        import torch

        B = self.batch_size
        total = max(1, math.ceil(self.opts.train.steps(stage) / B))
        self._set_stage(model, stage)
        opt = self._optimizer(model, stage)
        scaler = torch.amp.GradScaler("cuda") if self.amp == "fp16" else None
        if ckpt is not None:
            self._restore_stage(ckpt, opt, scaler)
        net = self._wrap(model)
        remaining = total - start_step
        if self.max_steps is not None:
            remaining = min(remaining, max(self.max_steps - steps_before, 0))
        st = _Stage(stage, model, net, opt, scaler, start_step, total, remaining, step=start_step,
                    res={"steps": total, "start_step": start_step, "steps_run": 0, "interrupted": False,
                         "samples": start_step * B, "losses": []})
        if remaining <= 0:
            st.res["interrupted"] = start_step < total
            if st.res["interrupted"]:
                self.save_checkpoint(model, opt, scaler, stage, start_step, done)
            return st.res
        self._train_loop(st, done)
        step = st.step
        st.res["samples"] = step * B
        if step < total:
            st.res["interrupted"] = True
        self.save_checkpoint(model, opt, scaler, stage, step, done + ([stage] if step >= total else []))
        if step >= total and self.val_src is not None:
            self._validate(model, stage, step)
        return st.res

    def _restore_stage(self, ckpt: Dict[str, Any], opt, scaler) -> None:
        """The optimiser, this rank's RNG and the fp16 scaler from a checkpoint (exact resume)."""
        import torch

        opt.load_state_dict(ckpt["optimizer"])
        rngs = ckpt.get("rng") or []
        if rngs:
            mine = rngs[self.dist.rank] if self.dist.rank < len(rngs) else rngs[0]
            torch.set_rng_state(mine["torch"])
            if "cuda" in mine and self.device.type == "cuda":
                torch.cuda.set_rng_state(mine["cuda"], self.device)
        if scaler is not None and "scaler" in ckpt:
            scaler.load_state_dict(ckpt["scaler"])

    def _wrap(self, model):
        """The network the steps run: DDP over the processes, torch.compile if asked."""
        import torch

        net = model
        if self.dist.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            net = DDP(model, device_ids=[self.device.index] if self.device.type == "cuda" else None,
                      broadcast_buffers=False)
        if self.opts.train.compile:
            net = torch.compile(net)
        return net

    def _stage_knobs(self) -> "_Knobs":
        import torch

        o, tcfg = self.opts, self.opts.train
        return _Knobs(lam=o.loss.lam, grad_weight=o.loss.grad_weight, clip=o.optim.clip_grad_norm,
                      log_every=tcfg.log_every, image_every=tcfg.image_every, checkpoint_every=tcfg.checkpoint_every,
                      val_every=tcfg.val_every, channels_last=tcfg.channels_last,
                      amp_dtype={"bf16": torch.bfloat16, "fp16": torch.float16}.get(self.amp) if self.amp else None)

    def _train_loop(self, st: "_Stage", done: List[str]) -> None:
        import torch

        from .datasets import StreamBatchSampler, fork_safe_threads

        sampler = StreamBatchSampler(len(self.train_ds), self.batch_size, self.opts.train.seed,
                                     STAGE_INDEX[st.name], st.step, st.remaining, self.dist.rank, self.dist.world)
        loader = self._loader(sampler)
        k = self._stage_knobs()
        if self.dist.main and self.progress:
            st.bar = tqdm(total=st.total, initial=st.step, desc=f"{st.name}", unit="step", dynamic_ncols=True,
                          file=sys.stderr)
        st.loss_acc = torch.zeros((), device=self.device, dtype=torch.float64)
        st.t_last, st.s_last = time.perf_counter(), st.step
        with fork_safe_threads():
            batches = iter(loader)                 # starts the workers
        for batch in batches:
            batch, loss, pred = self._train_step(st, batch, k)
            st.step += 1
            st.res["steps_run"] += 1
            st.loss_acc += loss.detach().double()
            st.n_acc += 1
            if st.step % k.log_every == 0 or st.last or st.step == st.start_step + 1:
                self._log_loss(st)
            if self.dist.main and self.writer is not None and k.image_every and (st.step % k.image_every == 0
                                                                                  or st.last):
                self._log_images(batch, pred.detach().float(), st.name, st.step)
            if st.bar is not None:
                st.bar.update(1)
            if self._after_step(st, done, k):
                break
        if st.bar is not None:
            st.bar.close()

    def _train_step(self, st: "_Stage", batch, k: "_Knobs"):
        """One optimiser step on one batch: returns (the batch on the device, the loss, the prediction)."""
        import torch

        from .losses import masked_log, scale_invariant_loss

        if self.batch_aug is not None:
            batch = self.batch_aug(batch)      # uint8 frames -> augmented batch, on self.device
        x = batch["image"].to(self.device, non_blocking=True)
        depth = batch["depth"].to(self.device, non_blocking=True)
        valid = batch["valid"].to(self.device, non_blocking=True)
        if k.channels_last and self.device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        target = masked_log(depth, valid)
        with torch.autocast(self.device.type, dtype=k.amp_dtype, enabled=k.amp_dtype is not None):
            pred = st.net(x, st.name)
        loss = scale_invariant_loss(pred.float(), target, valid, lam=k.lam, grad_weight=k.grad_weight)
        opt, scaler = st.opt, st.scaler
        opt.zero_grad(set_to_none=True)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
        else:
            loss.backward()
        if k.clip:
            torch.nn.utils.clip_grad_norm_([p for g in opt.param_groups for p in g["params"]], k.clip)
        if scaler is not None:
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()
        return batch, loss, pred

    def _log_loss(self, st: "_Stage") -> None:
        """The mean loss since the last log line (over all ranks): log.jsonl, TensorBoard, the progress bar."""
        stage, step = st.name, st.step
        lval = self.dist.mean(float(st.loss_acc.item()) / st.n_acc)
        if not math.isfinite(lval):
            raise TrainError(f"loss became {lval} at {stage} step {step}; lower the learning rates "
                             "(optim.lr / optim.lr_scale) or set optim.clip_grad_norm")
        now = time.perf_counter()
        sps = (step - st.s_last) * self.batch_size / max(now - st.t_last, 1e-9)
        st.t_last, st.s_last = now, step
        st.loss_acc.zero_()
        st.n_acc = 0
        st.res["losses"].append((step, lval))
        if not self.dist.main:
            return
        self.log.write({"stage": stage, "step": step, "samples": step * self.batch_size, "loss": lval,
                        "samples_per_s": sps, "time": time.time()})
        if self.writer is not None:
            self.writer.add_scalar(f"{stage}/loss", lval, step)
            self.writer.add_scalar(f"{stage}/samples_per_s", sps, step)
            for grp in st.opt.param_groups:
                self.writer.add_scalar(f"{stage}/lr_{grp.get('name', '')}", grp["lr"], step)
        if st.bar is not None:
            st.bar.set_postfix(loss=f"{lval:.4f}", sps=f"{sps:.0f}")

    def _after_step(self, st: "_Stage", done: List[str], k: "_Knobs") -> bool:
        """Validation and checkpoint every N steps; True when a stop signal (on any rank) ends the stage here."""
        if k.val_every and st.step % k.val_every == 0 and not st.last:
            self._validate(st.model, st.name, st.step)
            self._set_stage(st.model, st.name)
        if k.checkpoint_every and st.step % k.checkpoint_every == 0 and not st.last:
            self.save_checkpoint(st.model, st.opt, st.scaler, st.name, st.step, done)
        stop = self.stop_requested
        if self.dist.enabled:
            stop = self.dist.mean(1.0 if stop else 0.0) > 0
        if stop and not st.last:
            st.res["interrupted"] = True
            return True
        return False

    def _validate(self, model, stage: str, step: int) -> None:
        if not self.dist.main:
            self.dist.barrier()
            return
        from .evaluate import evaluate_model, format_results

        was = model.training
        model.eval()
        res = evaluate_model(model, self.val_src, self.val_family or "nyu", stage, str(self.device),
                             batch_size=8, workers=0)
        model.train(was)
        for proto, pr in res["protocols"].items():
            for row, m in pr["rows"].items():
                if self.writer is not None:
                    for k in ("delta1", "abs_rel", "rmse", "si_log"):
                        self.writer.add_scalar(f"val_{stage}_{proto}/{row}/{k}", m[k], step)
        self.log.write({"stage": stage, "step": step, "val": res["protocols"]})
        print(format_results(res, title=f"validation after {stage} step {step}"), file=sys.stderr)
        self.dist.barrier()

    def _log_images(self, batch, pred, stage: str, step: int) -> None:
        from .utils import colorize, denormalize, hstack_panels

        rows = []
        n = min(4, pred.shape[0])
        p = self.profile
        for i in range(n):
            rgb = denormalize(batch["image"][i].detach().cpu().numpy(), p)
            gt = batch["depth"][i, 0].detach().cpu().numpy()
            pr = np.exp(pred[i, 0].cpu().numpy())
            ok = gt > 0
            lo = float(gt[ok].min()) if ok.any() else p.min_depth
            hi = float(gt[ok].max()) if ok.any() else p.max_depth
            rows.append(hstack_panels([rgb, colorize(gt, lo, hi), colorize(pr, lo, hi)], height=p.input_h))
        grid = np.concatenate(rows, axis=0)
        self.writer.add_image(f"{stage}/rgb_gt_pred", grid, step, dataformats="HWC")


def train(cfg: Dict[str, Any], out: "str | Path", **kw: Any) -> Dict[str, Any]:
    """Programmatic entry point (tests, notebooks): ``train(config_dict, out_dir, resume=, overwrite=, max_steps=)``."""
    t = Trainer(cfg, out, **kw)
    try:
        res = t.run()
    except BaseException:
        t.dist.close(orderly=False)        # the other ranks may never reach a barrier
        raise
    t.dist.close()
    return res


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m training.train", description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", help="YAML config (training/configs/*.yaml); with --resume, default: the run's own")
    ap.add_argument("--out", required=True, help="run folder")
    ap.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint.pt")
    ap.add_argument("--overwrite", action="store_true", help="replace an existing run in --out")
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config entry, e.g. --set train.samples.coarse=100000 (repeatable)")
    ap.add_argument("--stages", default=None, help="comma-separated subset of coarse,fine")
    ap.add_argument("--max-steps", type=int, default=None, help="stop (and checkpoint) after this many steps")
    ap.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: the config's, auto)")
    ap.add_argument("--no-progress", action="store_true")
    args = ap.parse_args(argv)
    try:
        if args.config:
            cfg = load_yaml_config(args.config)
        elif args.resume and (Path(args.out) / "config.yaml").is_file():
            cfg = load_yaml_config(Path(args.out) / "config.yaml")
        else:
            raise TrainError("--config is required (unless --resume finds the run's config.yaml)")
        cfg = apply_overrides(cfg, args.set)
        if args.stages:
            cfg = deep_merge(cfg, {"train": {"stages": [s.strip() for s in args.stages.split(",") if s.strip()]}})
        res = train(cfg, args.out, resume=args.resume, overwrite=args.overwrite, max_steps=args.max_steps,
                    device=args.device, progress=False if args.no_progress else None)
    except KeyboardInterrupt:
        # a second Ctrl-C while stopping (the first one stops after the step and saves the checkpoint)
        print("train: interrupted (aborted before the checkpoint of the current step; the last one saved is "
              f"kept: python -m training.train --out {args.out} --resume)", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - user errors: one line; anything else is a bug (traceback)
        from mono_depth_ros.checkpoint import ModelFileError

        if not isinstance(exc, (TrainError, OSError, ValueError, ModelFileError)):
            raise
        msg = " | ".join(ln.strip() for ln in str(exc).splitlines() if ln.strip())
        print(f"train: error: {msg}", file=sys.stderr)
        return 2
    if int(os.environ.get("RANK", "0")) == 0:
        for st, r in res["stages"].items():
            first = r["losses"][0][1] if r["losses"] else float("nan")
            lastl = r["losses"][-1][1] if r["losses"] else float("nan")
            print(f"{st}: steps {r['start_step']} -> {r['start_step'] + r['steps_run']} of {r['steps']}, "
                  f"loss {first:.4f} -> {lastl:.4f}", file=sys.stderr)
        if res["interrupted"]:
            print(f"stopped early; continue with: python -m training.train --out {args.out} --resume", file=sys.stderr)
        elif "model" in res:
            print(f"model saved to {res['model']}", file=sys.stderr)
    # a run stopped by a signal is not a finished run: 128 + the signal (SIGINT 130, SIGTERM 143), as shells do;
    # --max-steps is a requested stop (0)
    return 128 + int(res["signal"]) if res.get("signal") else 0


if __name__ == "__main__":
    sys.exit(main())
