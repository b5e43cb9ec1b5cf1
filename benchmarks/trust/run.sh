#!/usr/bin/env bash
# The two runs shown in the README's "Trust" section (CPU, subsets: see there). From the repository root
# (DATA: the shared data folder, ../shared/data by default):
#   bash benchmarks/trust/run.sh
set -euo pipefail
DATA=${DATA:-../shared/data}
encoderzoo probe -e efficientnet-lite0 -d npz:${DATA}/medmnist-format/pbcblood_28.npz \
  -p knn,linear,robustness --corruptions bloodmnist --image-size 112 \
  --max-samples train=2000,val=500,test=200 --severities 1,3,5 --device cpu \
  --out benchmarks/trust/pbcblood/results.json --plots --save-predictions
encoderzoo probe -e efficientnet-lite0 -d folder:${DATA}/cxr-pneumonia-kermany \
  -p knn,linear,robustness --corruptions pneumoniamnist --image-size 112 \
  --max-samples train=1000,val=300,test=150 --severities 1,3,5 --device cpu \
  --out benchmarks/trust/kermany/results.json --plots --save-predictions
