"""Explanations spread over a Dask cluster (dask.distributed), written as `gradcam explain` writes them.

    from dask.distributed import Client
    import gradcam.dask
    client = Client("tcp://scheduler:8786")                  # or None: a local cluster for the call
    records = gradcam.dask.explain_images(["photos/"], "resnet50.onnx", methods=["gradcam"],
                                          out_dir="out", client=client, preprocess="imagenet", top_k=2)

Each worker process loads the model once and keeps it (shared by its threads, one explainer per
thread); each explainer runs on the worker's share of the machine's cores. docs/dask.md has the
whole story (a real cluster, Slurm, the measured speed).
"""
import json
import os
import socket
import tempfile
import threading
import uuid
import warnings

from . import _tool
from .core import Error, Model

__all__ = ["explain_images"]

# ---- in each worker process ----------------------------------------------------------------------

_models = {}                 # model path -> gradcam.Model, loaded once per process
_pipes = {}                  # (worker thread id, model path, argv) -> its gradcam.Pipeline (one explainer each)
_lock = threading.Lock()


def _pipeline(model_path, argv):
    key = (threading.get_ident(), model_path, tuple(argv))
    p = _pipes.get(key)  # (only this thread adds this key)
    if p is None:
        with _lock:  # the model loaded once per process, whichever thread asks first
            m = _models.get(model_path)
            if m is None:
                m = _models[model_path] = Model(model_path)
        p = _tool.Pipeline(m, argv, model_path=model_path)
        with _lock:
            _pipes[key] = p
    return p


def _host_of(address):
    host = address.split("://", 1)[-1].rsplit(":", 1)[0]
    return host.strip("[]")


def _threads_here(processes_on_host):
    """This worker's share of the cores for one explainer: the cores this process may run on, split
    over the worker processes of its host and the threads of this worker."""
    from distributed import get_worker
    w = get_worker()
    procs = max(1, processes_on_host.get(_host_of(w.address), 1))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    state = getattr(w, "state", None)  # (Worker.nthreads moved there in 2022.x)
    nthreads = getattr(state, "nthreads", None) or w.nthreads
    return max(1, cores // (procs * max(1, nthreads)))


def _spin_check(processes_on_host, threads):
    """(OMP_WAIT_POLICY as this worker process saw it, the threads its explainers run)."""
    n = int(threads) if threads is not None else _threads_here(processes_on_host)
    return (os.environ.get("OMP_WAIT_POLICY") or "").strip().lower(), n


def _warn_spinning(client, per_host, threads):
    """Workers whose explainers run several OpenMP threads without OMP_WAIT_POLICY=PASSIVE: their
    idle threads spin after each parallel region (libgomp's default), against the other workers on
    the machine. libgomp reads the variable when it loads, so it cannot be set from here: say so."""
    try:
        seen = client.run(_spin_check, per_host, threads)
    except Exception:  # a diagnostic only: a worker that cannot answer now is the tasks' business
        return
    spinning = sorted(a for a, (policy, n) in seen.items() if n > 1 and policy != "passive")
    if spinning:
        warnings.warn("gradcam.dask: %d worker(s) (%s) run explainers of several threads without "
                      "OMP_WAIT_POLICY=PASSIVE: their idle OpenMP threads spin against the other workers; start "
                      "the workers with OMP_WAIT_POLICY=PASSIVE in their environment (docs/dask.md)" %
                      (len(spinning), ", ".join(spinning[:3]) + (", ..." if len(spinning) > 3 else "")),
                      RuntimeWarning, stacklevel=3)


def _explain_task(model_path, argv, path, stem, out_dir, processes_on_host, want_threads):
    """One input on a worker: its record, whether it failed, and the run's description."""
    if not want_threads:
        argv = list(argv) + ["--threads", str(_threads_here(processes_on_host))]
    p = _pipeline(model_path, argv)
    r = p.explain(path, out_dir=out_dir, name=stem)
    return {"record": r.record, "failed": r.failed, "describe": None if r.failed else p.describe()}


# ---- on the client ---------------------------------------------------------------------------------

def _processes_per_host(client):
    counts = {}
    for addr in client.scheduler_info().get("workers", {}):
        h = _host_of(addr)
        counts[h] = counts.get(h, 0) + 1
    return counts


def _local_client():
    """A cluster of this machine for one call: one single-threaded worker process per core, on
    loopback, OpenMP waiting passively (set before the workers load the library)."""
    from distributed import Client, LocalCluster
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    old = os.environ.get("OMP_WAIT_POLICY")
    os.environ["OMP_WAIT_POLICY"] = old or "PASSIVE"
    try:
        cluster = LocalCluster(n_workers=cores, threads_per_worker=1, processes=True, host="127.0.0.1",
                               dashboard_address=None)
    finally:
        if old is None:
            del os.environ["OMP_WAIT_POLICY"]
    return Client(cluster), cluster


def _write_results(out_dir, head, records):
    """results.json as the command writes it: the run's head, the inputs explained, the failures."""
    doc = dict(head or {})
    doc["inputs"] = [r for r in records if "error" not in r]
    doc["failures"] = [{"path": r.get("path"), "error": r.get("error")} for r in records if "error" in r]
    fd, tmp = tempfile.mkstemp(prefix="results.json.tmp-", dir=out_dir)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(doc, f, indent=2, ensure_ascii=False)
            f.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, os.path.join(out_dir, "results.json"))
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def explain_images(paths, model_path, methods=("gradcam", "guided-backprop", "guided-gradcam"), out_dir="gradcam-out",
                   client=None, progress=False, **options):
    """Explains every picture of `paths` (files, or folders walked as the command walks them) with the
    model at `model_path` on a Dask cluster, writing into out_dir what `gradcam explain` writes (the
    same file names, results.json with the same schema; no report.html) and returning the per-input
    records of results.json in input order. A picture that cannot be explained gets a record
    {"path", "error"} and the others go on, also when its task raised or its worker died under
    it; a gradcam.Error (a bad option, a model that cannot be explained) stops the call. Options are the command's, by keyword (labels=,
    preprocess=, top_k=, classes=, npy=True, task=...). client: a distributed.Client; None: the
    current default client, else a local cluster for this call. progress: Dask's progress bar.

    Every worker must see model_path, the pictures and out_dir at the same paths (a shared file
    system on a real cluster). threads= sets the threads per explainer; by default each one gets its
    worker's share of its machine's cores."""
    from distributed import default_client
    if isinstance(methods, str):
        methods = [methods]
    model_path = os.path.abspath(os.fspath(model_path))
    out_dir = os.path.abspath(os.fspath(out_dir))
    argv = _tool.options_to_argv(methods=list(methods), **options)
    if any(a in ("-o", "--out") or a.startswith("--out=") for a in argv):
        raise ValueError("give the output folder as out_dir=, not as an option")
    inputs = _tool.list_inputs([paths] if isinstance(paths, (str, os.PathLike)) else list(paths), out_dir)
    if not inputs:
        raise ValueError("no inputs: the paths given hold no .png, .jpg, .jpeg or .npy file")
    # the options are checked here, once, before anything is sent (the model is not loaded for it)
    _check_options(model_path, argv)
    os.makedirs(out_dir, exist_ok=True)
    own = None
    if client is None:
        try:
            client = default_client()
        except ValueError:
            client, own = _local_client()
    try:
        per_host = _processes_per_host(client)
        want_threads = "threads" in options and options["threads"] is not None
        if own is None:  # (a cluster made here has it set)
            _warn_spinning(client, per_host, options["threads"] if want_threads else None)
        # keys unique to this call: a key the scheduler still holds from an earlier call (released
        # asynchronously) would hand back that call's result instead of running this one
        token = uuid.uuid4().hex
        futures = [client.submit(_explain_task, model_path, argv, os.path.abspath(p), stem, out_dir, per_host,
                                 want_threads, key="gradcam-%s-%s-%d" % (stem, token, i), pure=False)
                   for i, (p, stem) in enumerate(inputs)]
        if progress:
            from distributed import progress as dask_progress
            dask_progress(futures)
        results = _gather(client, futures, inputs)
    finally:
        if own is not None:
            cluster = own
            client.close()
            cluster.close()
    head = next((r["describe"] for r in results if r["describe"]), None)
    records = [r["record"] for r in results]
    if head is not None:
        _write_results(out_dir, head, records)
    return records


def _gather(client, futures, inputs):
    """Every task's result, in input order. A task that raised, or that Dask gave up on (its worker
    died under it more often than distributed.scheduler.allowed-failures allows: KilledWorker),
    becomes that input's failure record and the others are kept. gradcam.Error is the exception:
    it stops the run (a bad option or a model that cannot be explained fails every input, as it
    stops the command). Results are fetched one by one with Future.result(), which waits while Dask
    recomputes a result lost with a dead worker (its files are written again, the same bytes)."""
    out = []
    for f, (path, _stem) in zip(futures, inputs):
        try:
            out.append(f.result())
        except Error:
            raise
        except Exception as exc:  # (the task's exception re-raised here, KilledWorker, CancelledError)
            why = "%s: %s" % (type(exc).__name__, " ".join(str(exc).split()))  # one line
            rec = {"path": os.path.abspath(path), "error": "%s: the worker failed on it: %s" % (path, why)}
            out.append({"record": rec, "failed": True, "describe": None})
    return out


def _check_options(model_path, argv):
    """Bad options fail here with the command's message rather than once per picture on the cluster."""
    if not os.path.isfile(model_path):
        raise FileNotFoundError("%s: no such model file" % model_path)
    bad = [a for a in argv if a in ("-h", "--help")]
    if bad:
        raise ValueError("%s is not an option here" % bad[0])
