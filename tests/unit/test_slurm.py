"""hydra/launcher=slurm: the composed launcher config becomes the sbatch script we expect."""

import os
import stat

import pytest
from conftest import compose_train
from omegaconf import OmegaConf


def test_slurm_preset_gives_one_task_per_gpu_on_every_node(tmp_path, monkeypatch):
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install 'mmrun[slurm]'")
    import submitit
    from hydra_plugins.hydra_submitit_launcher.config import BaseQueueConf

    cfg = compose_train(["hydra/launcher=slurm", "trainer=ddp", "trainer.devices=4", "trainer.num_nodes=2",
                         "hydra.launcher.partition=gpu", "hydra.launcher.timeout_min=90",
                         f"hydra.sweep.dir={tmp_path / 'sweep'}"], with_hydra=True)
    launcher = OmegaConf.to_container(cfg.hydra.launcher, resolve=True)
    assert launcher["_target_"].endswith("SlurmLauncher")
    assert (launcher["nodes"], launcher["gpus_per_node"], launcher["tasks_per_node"]) == (2, 4, 4)

    # The plugin's own mapping: shared keys as they are, SLURM-only keys prefixed with slurm_.
    shared = set(OmegaConf.structured(BaseQueueConf).keys())
    params = {k if k in shared else f"slurm_{k}": v for k, v in launcher.items()
              if k not in ("_target_", "submitit_folder", "max_num_timeout")}
    fake_srun = tmp_path / "bin" / "srun"  # submitit only checks that srun exists
    fake_srun.parent.mkdir()
    fake_srun.write_text("#!/bin/sh\n")
    fake_srun.chmod(fake_srun.stat().st_mode | stat.S_IEXEC)
    monkeypatch.setenv("PATH", f"{fake_srun.parent}{os.pathsep}{os.environ['PATH']}")
    executor = submitit.AutoExecutor(cluster="slurm", folder=str(tmp_path / "submitit"))
    executor.update_parameters(**params)  # refuses unknown parameters
    script = executor._executor._make_submission_file_text("mmrun", "uid")
    for line in ("--nodes=2", "--gpus-per-node=4", "--ntasks-per-node=4", "--partition=gpu", "--time=90",
                 "--cpus-per-task=8", "--mem=64GB"):
        assert f"#SBATCH {line}\n" in script
