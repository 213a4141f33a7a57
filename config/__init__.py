import os

# One BLAS thread per process, set before anything imports numpy. Safeguard parallelises across
# processes (gunicorn workers, Celery's prefork children), and its matrix products are small
# (PDQ's 64x64 buffer, a thumbnail's DCT): OpenBLAS's own threads only spin on cores those
# processes already use. Measured: 5.9 -> 2.8 ms CPU per 320x240 image on an idle 2-core box,
# and the worker's hashing CPU halved under load (benchmarks/LOAD.md). An operator's explicit
# setting wins.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from .celery import app as celery_app  # noqa: E402

__all__ = ("celery_app",)
