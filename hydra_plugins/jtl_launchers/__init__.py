"""jtl's Hydra launchers (`hydra/launcher=cpu_pool`, `submitit_local`, `slurm`): grid cells in
other processes, where a cell whose process dies is named by the launching process."""
