"""The demo end to end (:func:`run_demo`): inputs checked, step 1 (input bag), step 2 (the node's pipeline
over the bag, :func:`run_depth_bag`), step 3 (files and metrics) and the held-out check, written into a
staging folder that replaces the previous output only once the run has succeeded."""
from __future__ import annotations

import json
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Dict, List, Optional, Tuple

from ..backends.base import BackendError
from ..bag.run import BagRunOptions, run_bag
from ..cli import one_line
from ..default_models import (ROAD_MODEL, STREET_DEMO_SEED, STREET_DEMO_SIZE, STREET_TRAIN_MEAN_FALLBACK,
                              default_model_for, model_train_mean)
from ..model_spec import ModelFileError
from ..params import NodeConfig
from ..pipeline import DepthPipeline
from ..text import plural
from .common import (DEFAULT_HFOV_DEG, DEFAULT_OUT, DEMO_FRAMES, DEMO_KIND, DEMO_SEED, DEMO_SIZE,
                     FRAME_ID, GT_TOPIC, HELDOUT_SEEDS0, HELDOUT_SEQUENCES, IMAGE_TOPIC, INFO_TOPIC, MARKER, NAMESPACE,
                     TRAIN_MEAN_DEPTH, WORLD_FRAME, DemoError, Log)
from .evaluation import evaluate_heldout, metrics_markdown
from .inputs import InputFrames, _check_bag, is_bag, write_images_bag, write_synthetic_bag
from .outdir import _as_made_by_mkdir, _rebase, _swap_in, check_out_dir
from .outputs import _depth_frame_id, export_outputs


def run_depth_bag(input_bag: Path, output_bag: Path, model: Optional[str], with_gt: bool,
                  image_topic: Optional[str] = None, camera_info_topic: Optional[str] = None,
                  max_frames: Optional[int] = None, copy: str = "all", backend: str = "auto",
                  threads: int = 0, progress: bool = True, log: Log = print) -> Any:
    """``mono-depth bag INPUT --out OUTPUT [--eval --gt-topic GT_TOPIC]`` (the node's processing)."""
    cfg = NodeConfig.from_mapping({"backend": backend, "threads": int(threads)})
    opts = BagRunOptions(input=Path(input_bag), output=Path(output_bag), model=model, image_topic=image_topic,
                         camera_info_topic=camera_info_topic, config=cfg, namespace=NAMESPACE, copy=copy,
                         overwrite=False, max_frames=max_frames, progress=progress, evaluate=with_gt,
                         gt_topic=GT_TOPIC if with_gt else None, eval_dir=Path(str(output_bag) + "_eval"),
                         protocols=("paper",), plots=False)
    return run_bag(opts, log=log)


@dataclass
class DemoResult:
    out: Path
    frames: int
    input_bag: Path
    depth_bag: Path
    files: Dict[str, List[Path]] = field(default_factory=dict)
    metrics: Optional[Dict[str, Dict[str, float]]] = None
    markdown: str = ""
    model: str = ""
    backend: str = ""
    seconds: float = 0.0
    frame_id: str = FRAME_ID   # the depth's frame (an input bag's camera frame; rviz2's Fixed Frame)


def _check_model(model_path: str, backend: str, threads: int) -> str:
    """Load the model as the run will (file, sidecar, backend) and drop it: a broken or foreign model stops
    the demo before anything is written. Returns its one-line description."""
    try:
        pipe = DepthPipeline(model_path, backend=backend, threads=threads or None)
    except (ModelFileError, BackendError, ValueError, OSError) as exc:
        raise DemoError(f"--model {model_path}: {one_line(exc)}") from None
    desc = f"{pipe.spec.describe()} on {pipe.backend.describe()}"
    pipe.close()
    return desc


def _street_settings(model: Optional[str], heldout: int, width: int, height: int, log=print):
    """(kind, seed, train_mean, model, heldout, width, height) of the street demo: KITTI's camera on a synthetic
    street (seed 1) and the road model; the demo's indoor default size becomes KITTI's 1242x375."""
    if model is None:
        if not ROAD_MODEL.is_file():
            raise DemoError(f"the road model {ROAD_MODEL} is not installed; pass --model")
        model = str(ROAD_MODEL)
    if (width, height) == DEMO_SIZE:
        width, height = STREET_DEMO_SIZE
    mean = model_train_mean(model)
    if heldout:
        log("street scene: no synthetic held-out check (the road model's real-KITTI scores: "
            "python -m training.eval_kitti_real)")
    return ("street", STREET_DEMO_SEED, mean if mean is not None else STREET_TRAIN_MEAN_FALLBACK, model, 0,
            width, height)


@dataclass
class _Plan:
    """The checked settings of one demo run. ``model`` is None until :func:`_resolve_model` has picked the
    shipped model for the input (no --model); from then on it is the one model file every step runs and names."""
    model: Optional[str]
    in_path: Optional[Path]
    input_is_bag: bool
    frames_in: Optional[InputFrames]
    frames: Optional[int]
    width: int
    height: int
    heldout: int
    scene: Tuple[str, int, float]   # the synthetic scene kind, its seed and the training-set mean depth
    model_why: str = ""             # why the default model was picked (logged at step 2); "" for --model

    @property
    def model_path(self) -> str:
        assert self.model is not None, "the model is resolved before the run (_resolve_model)"
        return self.model


def _check_numbers(frames: Optional[int], heldout: int, width: int, height: int) -> None:
    if frames is not None and frames < 1:
        raise DemoError(f"--frames must be >= 1, got {frames}")
    if heldout < 0:
        raise DemoError(f"--heldout must be >= 0, got {heldout}")
    if width < 16 or height < 16:
        raise DemoError(f"--size must be at least 16x16, got {width}x{height}")


def _plan(model: Optional[str], input: Optional[str], frames: Optional[int], width: int, height: int,
          heldout: int, log: Log, scene: str) -> _Plan:
    """Every input (scene, model, --input, numbers) checked; writes nothing."""
    kind, seed, train_mean = DEMO_KIND, DEMO_SEED, TRAIN_MEAN_DEPTH
    if scene == "street":   # --scene street: KITTI's camera on a synthetic street and the road model
        kind, seed, train_mean, model, heldout, width, height = _street_settings(model, heldout, width, height, log)
    elif scene != "indoor":
        raise DemoError(f"--scene must be indoor or street, got {scene!r}")
    if model is not None and not Path(model).is_file():
        raise DemoError(f"--model {model}: no such file")
    in_path = Path(input) if input else None
    if in_path is not None and not in_path.exists():
        raise DemoError(f"--input {in_path}: no such file or directory")
    _check_numbers(frames, heldout, width, height)
    return _Plan(str(model) if model is not None else None, in_path, in_path is not None and is_bag(in_path), None,
                 frames, width, height, heldout, (kind, seed, train_mean))


def _resolve_model(plan: _Plan, bag_size: Optional[Tuple[int, int]] = None) -> None:
    """No --model: the shipped model for the input's camera, decided once by :func:`~mono_depth_ros.default_models.
    default_model_for` (the rule of predict, bag and the launch files) from the size the run will see -- the
    rendered sequence's, the first image's, or the input bag's first camera_info (``bag_size``; (0, 0):
    unknown). Every step then runs and names that file."""
    if plan.model is not None:
        return
    if plan.input_is_bag:
        w, h = bag_size or (0, 0)
        size: Tuple[Optional[int], Optional[int]] = (w or None, h or None)
    elif plan.frames_in is not None:
        size = (int(plan.frames_in.first.shape[1]), int(plan.frames_in.first.shape[0]))
    else:
        size = (plan.width, plan.height)
    path, plan.model_why = default_model_for(*size)
    if not path.is_file():
        raise DemoError(f"the shipped model {path} is not installed; pass --model")
    plan.model = str(path)
    if path == ROAD_MODEL and plan.scene[0] == DEMO_KIND:   # the paper's baseline: the running model's training set
        mean = model_train_mean(path)
        plan.scene = (plan.scene[0], plan.scene[1], mean if mean is not None else STREET_TRAIN_MEAN_FALLBACK)


def run_demo(out: "str | Path" = DEFAULT_OUT, model: Optional[str] = None, input: Optional[str] = None,
             frames: Optional[int] = None, width: int = DEMO_SIZE[0], height: int = DEMO_SIZE[1],
             overwrite: bool = False, backend: str = "auto", threads: int = 0, progress: bool = True,
             heldout: int = HELDOUT_SEQUENCES, log: Log = print, scene: str = "indoor") -> DemoResult:
    """The demo into ``out``. Every input (model, --input) is checked before anything is written; the run
    writes into a temporary folder beside ``out`` and replaces the previous demo output only once it has
    succeeded (a failed or interrupted run leaves ``out`` exactly as it was)."""
    t0 = time.perf_counter()
    plan = _plan(model, input, frames, width, height, heldout, log, scene)
    out = check_out_dir(out, overwrite)
    bag_size = None
    if plan.input_is_bag:
        assert plan.in_path is not None
        bag_size = _check_bag(plan.in_path)[1]
    elif plan.in_path is not None:
        plan.frames_in = InputFrames(plan.in_path, frames)   # the first frame decoded, the folder checked
    _resolve_model(plan, bag_size)
    _check_model(plan.model_path, backend, threads)   # (step 2 says which model runs, and warns on the geometry)

    made: List[Path] = []   # parent folders this run creates (removed again if it fails)
    parent = out.parent
    while not parent.exists():
        made.append(parent)
        parent = parent.parent
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}.demo-new-", dir=str(out.parent)))
    _as_made_by_mkdir(staging)   # it becomes ``out`` when ``out`` is new
    try:
        (staging / MARKER).write_text(json.dumps({"made_by": "mono-depth demo", "time": time.time()}) + "\n")
        result = _run_demo_steps(staging, out, plan, backend, threads, progress, log)
        result.seconds = time.perf_counter() - t0
        _swap_in(staging, out, log)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        for d in made:   # innermost first
            try:
                d.rmdir()
            except OSError:
                break
        raise
    return result


@dataclass
class _Input:
    """Step 1's result: the input bag, its topics (None: detected), whether it has ground truth, what to copy."""
    bag: Path
    image_topic: Optional[str] = None
    info_topic: Optional[str] = None
    with_gt: bool = False
    copy: str = "tf"


def _input_step(staging: Path, plan: _Plan, n: int, steps: int, progress: bool, log: Log) -> _Input:
    kind, seed, _ = plan.scene
    if plan.in_path is None:
        log(f"1/{steps} rendering {n} frames of a synthetic {kind} sequence ({plan.width}x{plan.height}, seed "
            f"{seed}, exact ground truth) into a ROS 2 bag")
        bag = staging / "input_bag"
        write_synthetic_bag(bag, n, plan.width, plan.height, kind=kind, seed=seed, progress=progress)
        return _Input(bag, IMAGE_TOPIC, INFO_TOPIC, True, "all")
    if plan.input_is_bag:
        log(f"1/{steps} input: the bag {plan.in_path} (no ground truth: metrics are skipped)")
        return _Input(plan.in_path)
    assert plan.frames_in is not None
    h, w = plan.frames_in.first.shape[:2]
    bag = staging / "input_bag"
    info = write_images_bag(bag, plan.frames_in)
    log(f"1/{steps} input: {info['frames']} image(s) {w}x{h} from {plan.in_path}, written into a ROS 2 bag with "
        f"assumed intrinsics ({DEFAULT_HFOV_DEG:g} deg horizontal field of view; no ground truth: metrics are "
        "skipped)")
    return _Input(bag, IMAGE_TOPIC, INFO_TOPIC)


def _heldout_step(staging: Path, plan: _Plan, md: str, name: str, n: int, heldout: int, steps: int,
                  backend: str, threads: int, progress: bool, log: Log) -> str:
    """Step 4: the same model on ``heldout`` more synthetic sequences; metrics.md/.json extended; returns the
    markdown."""
    seed = plan.scene[1]
    seeds = list(range(HELDOUT_SEEDS0, HELDOUT_SEEDS0 + heldout))
    log(f"4/{steps} held-out check: the same model on {heldout} more synthetic {DEMO_KIND} sequences "
        f"(seeds {seeds[0]}-{seeds[-1]}, {n} frames each; the model was trained on seed 0's scenes)")
    train_mean = plan.scene[2]
    h_rows = evaluate_heldout(plan.model_path, seeds, n, plan.width, plan.height, train_mean=train_mean,
                              backend=backend, threads=threads, progress=progress)
    h_md = metrics_markdown(h_rows, name, train_mean)
    md = (f"## The demo sequence (seed {seed}, {n} frames)\n\n{md}\n## Held-out check: {heldout} more sequences (seeds {seeds[0]}-{seeds[-1]})\n\n"
          f"One {n}-frame sequence is a noisy estimate (the gain over the baseline varies widely between sequences); "
          f"these {heldout} are the held-out set of mono_depth_ros/models/README.md.\n\n{h_md}")
    (staging / "metrics.md").write_text(f"# Demo metrics\n\n{md}")
    doc = json.loads((staging / "metrics.json").read_text())
    doc["heldout"] = {"seeds": seeds, "frames_per_sequence": n,
                      "rows": {"model": h_rows["model"], "mean_depth_baseline": h_rows["mean"],
                               "per_image_mean_baseline": h_rows["image_mean"]},
                      "abs_rel_improvement_over_mean_baseline":
                          1.0 - h_rows["model"]["abs_rel"] / h_rows["mean"]["abs_rel"]}
    (staging / "metrics.json").write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    return md


def _rebase_eval_files(staging: Path, out: Path) -> None:
    """The bag evaluation names its bags: give the paths they will have once moved into place."""
    ev = staging / "depth_bag_eval"
    if not ev.is_dir():
        return
    for f in ev.iterdir():
        if f.suffix in (".json", ".md", ".csv") and f.is_file():
            text = f.read_text()
            if str(staging) in text:
                f.write_text(text.replace(str(staging), str(out)))


def _run_demo_steps(staging: Path, out: Path, plan: _Plan, backend: str, threads: int, progress: bool,
                    log: Log) -> DemoResult:
    train_mean = plan.scene[2]
    n = plan.frames or DEMO_FRAMES
    heldout = plan.heldout if plan.in_path is None else 0    # the held-out check is about the synthetic sequences
    steps = 4 if heldout else 3
    inp = _input_step(staging, plan, n, steps, progress, log)
    log(f"2/{steps} running the bag through depth_node's pipeline (mono-depth bag) with {plan.model_path}")
    if plan.model_why:
        log(plan.model_why)
    depth_bag = staging / "depth_bag"
    res = run_depth_bag(inp.bag, depth_bag, plan.model_path, inp.with_gt, inp.image_topic, inp.info_topic,
                        max_frames=plan.frames if plan.input_is_bag else None, copy=inp.copy,
                        backend=backend, threads=threads, progress=progress, log=log)
    log(f"3/{steps} writing depth PNG/NPY, colourised depth, side-by-side images, PLY clouds" +
        (" and metrics" if inp.with_gt else ""))
    name = Path(plan.model_path).name
    files, rows, md = export_outputs(staging, inp.bag, depth_bag, inp.with_gt, name, inp.image_topic,
                                     train_mean=train_mean, progress=progress)
    if heldout and rows is not None:
        md = _heldout_step(staging, plan, md, name, n, heldout, steps, backend, threads, progress, log)
    _rebase_eval_files(staging, out)
    files = {k: [_rebase(p, staging, out) for p in v] for k, v in files.items()}
    result = DemoResult(out=out, frames=res.frames, input_bag=_rebase(Path(inp.bag), staging, out),
                        depth_bag=_rebase(depth_bag, staging, out), files=files, metrics=rows, markdown=md,
                        model=plan.model_path, frame_id=_depth_frame_id(depth_bag))
    (staging / "README.md").write_text(describe(result, inp.with_gt))
    return result


def describe(r: DemoResult, with_gt: bool) -> str:
    """Where everything is and how to look at it (printed, and written to out/README.md)."""
    o = r.out
    lines = [
        f"# mono-depth demo output ({plural(r.frames, 'frame')}, model {r.model})", "",
        f"- input bag (ROS 2):        {r.input_bag}",
        f"- depth bag (ROS 2, MCAP):  {r.depth_bag}   topics {NAMESPACE}/image (32FC1 m), {NAMESPACE}/camera_info, "
        f"{NAMESPACE}/points (PointCloud2 xyz+rgb), {NAMESPACE}/colored" +
        (" + the input's /camera/*, /tf" if with_gt else ""),
        f"- depth:          {o / 'depth'}/frame_NNNN.png (uint16 mm, 0 = invalid) and .npy (float32 m, NaN = invalid)",
        f"- colourised:     {o / 'color'}/frame_NNNN.png (turbo, near = red)",
        f"- side by side:   {o / 'side_by_side'}/frame_NNNN.png (RGB | " + ("ground truth | prediction | abs rel error"
                                                                          if with_gt else "prediction") + ")",
        f"- point clouds:   {o / 'clouds'}/frame_NNNN.ply (camera optical frame, metres, coloured)",
    ]
    if with_gt:
        lines.append(f"- metrics:        {o / 'metrics.md'}, {o / 'metrics.json'} "
                     f"(and the bag evaluation in {o / 'depth_bag_eval'})")
    else:
        lines.append("- metrics:        none (the input has no ground truth)")
    lines += ["", "How to look at it:",
              f"- any image viewer: {o / 'side_by_side'}/frame_0000.png",
              f"- PLY: meshlab / CloudCompare / `python -c \"import open3d as o3d; "
              f"o3d.visualization.draw_geometries([o3d.io.read_point_cloud('{o / 'clouds'}/frame_0000.ply')])\"`",
              f"- ROS 2: `ros2 bag play {r.depth_bag} --loop`, then rviz2 with Fixed Frame "
              f"`{r.frame_id}`" + (f" (or `{WORLD_FRAME}`: /tf is in the bag)" if with_gt else "") +
              f", add PointCloud2 {NAMESPACE}/points and Image {NAMESPACE}/colored",
              f"- Foxglove Studio: Open local file -> {r.depth_bag}/depth_bag.mcap (3D panel: {NAMESPACE}/points; "
              f"Image panels: {NAMESPACE}/colored" + (", /camera/image_raw" if with_gt else "") + ")",
              ""]
    if r.markdown:
        lines += ["Metrics vs ground truth:", "", r.markdown]
    return "\n".join(lines) + "\n"
