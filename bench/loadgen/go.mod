module skiff/bench/loadgen

go 1.22
