#!/usr/bin/env bash
# The GPU checks of issues 5 and 6 in one device call (well under its 10-minute limit):
# the GPU kernel tests, then benchmarks/kernels.py (segment-sum, fused edge layer, a processor
# layer and a training step at nside 64, triton against torch).
#
# The device image has torch, triton, lightning and xarray but not healpy or zarr. Once, here,
# in the repo root (about 23 MB of wheels for its Python 3.12):
#   echo /.whl/ >> .git/info/exclude
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     --platform manylinux1_x86_64 -d .whl healpy astropy pyerfa astropy-iers-data zarr numcodecs donfig crc32c
# then the device tool's run: command "bash benchmarks/gpu_session.sh", carry [".whl"], timeout_s 570.
# Output lands in $OUT (or benchmarks/results/), named by device and date, ready to commit
# under benchmarks/results/.
set -uo pipefail
out=${OUT:-benchmarks/results}
if [ -d .whl ]; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    || exit 1
  export PYTHONPATH=/tmp/site:${PYTHONPATH:-}
fi
export PYTHONPATH=$PWD:${PYTHONPATH:-} PYTHONUNBUFFERED=1
tag=$(python3 -c "import torch; print(torch.cuda.get_device_name().replace(' ', '-'))")-$(date +%F)
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv | tee "$out/kernels-device-$tag.txt"
timeout 200 python3 -m pytest -q --noconftest -p no:cacheprovider -m gpu tests/test_kernels.py 2>&1 \
  | tee "$out/kernels-tests-$tag.txt"
timeout 330 python3 benchmarks/kernels.py 2>&1 | tee "$out/kernels-$tag.txt"
