"""The workflow on a real Slurm (run in the background of the session: tests/slurm_run.py). Every rule but the local
ones runs as a Slurm job, GPU jobs run side by side (the local one-GPU limit does not cap the cluster), the fine-tune
survives Slurm's time limit (its retry resumes from its checkpoint), and the results equal a local run's.

Skipped only where the cluster cannot start (not root, no Slurm packages) and LATENT_INTERP_REQUIRE_SLURM is unset;
CI sets it, so there a cluster that does not start fails the test.
"""

import json
import os
import re

import pytest

from conftest import EQUIVARIANT, REPO, SECOND, file_digests, job_counts

pytestmark = [pytest.mark.workflow, pytest.mark.slurm]

LOCAL_RULES = {"all", "metrics_summary", "interp_summary", "compare_vaes"}  # the Snakefile's localrules


STUDY = ("frames", "latents", "recon", "metrics", "interp", "predictors", "geometry", "embeddings")
ACROSS_MODELS = {"metrics/summary.csv", "metrics/comparison.csv", "interp/summary.csv"}


# The demo on the cluster (tests/slurm_run.py's command: profiles/slurm, then the test cluster's own profile over it).
@pytest.mark.readme("tools/slurm_test_cluster.sh start", "snakemake --profile profiles/slurm",
                    "snakemake --profile profiles/slurm --profile my-cluster")
def test_the_workflow_runs_on_slurm_with_gpu_jobs_side_by_side_and_matches_a_local_run(slurm_run, workflow_run):
    if slurm_run.error:
        if os.environ.get("LATENT_INTERP_REQUIRE_SLURM"):
            pytest.fail(slurm_run.error)
        pytest.skip(slurm_run.error)
    returncode, output, seconds = slurm_run.finish()
    workdir, watch = slurm_run.workdir, slurm_run.watch
    (REPO / "test-artifacts").mkdir(exist_ok=True)
    (REPO / "test-artifacts" / "slurm-run.log").write_text(output)
    assert returncode == 0, output[-6000:]

    # Every job of a non-local rule went to Slurm (the fine-tune twice), and Slurm saw each of those rules.
    planned = job_counts(output)  # the first "Job stats" is the main process's; the output also holds job logs
    submitted = re.findall(r"submitted with SLURM jobid (\d+) \(log: \S*/slurm_logs/rule_(\w+)/", output)
    local = sum(count for rule, count in planned.items() if rule in LOCAL_RULES)
    assert len(submitted) == len({job for job, _ in submitted}) == sum(planned.values()) - local + 1
    expected = set(planned) - LOCAL_RULES
    assert {rule for _, rule in submitted} == set(watch.rules.values()) == expected and "finetune" in expected
    # More than one GPU job at once: profiles/default's gpu=1 is scoped to each job, not to the cluster run.
    assert watch.peak_queued_gpu > 1 and watch.peak_running_gpu == 2
    # The fine-tune hit its time limit once; the retry resumed from the checkpoint the first attempt left.
    finetune_jobs = sorted((job for job, rule in watch.rules.items() if rule == "finetune"), key=int)
    assert [watch.states[job] for job in finetune_jobs] == ["TIMEOUT", "COMPLETED"]
    record = json.loads((workdir / "results" / "models" / "tiny-kl-finetuned" / "finetune.json").read_text())
    assert len(record["resumed_at_steps"]) == 1 and record["resumed_at_steps"][0] > 0
    assert "resumed from" in (workdir / "results" / "logs" / "finetune" / "tiny-kl-finetuned.log").read_text()
    # The same stores, tables and embeddings per model as the local run, the resumed fine-tune included. The cluster
    # runs the first VAE and its decoder-only fine-tune only (conftest.slurm_run): the tables over every model differ.
    on_slurm, on_this_machine = ({path: digest for path, digest in file_digests(root / "results", *STUDY).items()
                                  if path not in ACROSS_MODELS} for root in (workdir, workflow_run))
    assert len(on_slurm) > 100  # the decoder-only fine-tune has no latents of its own
    assert on_slurm == {path: digest for path, digest in on_this_machine.items()
                        if SECOND not in path and EQUIVARIANT not in path
                        and (path in on_slurm or not path.startswith("embeddings/"))}
    summary = (f"slurm run: {len(submitted)} Slurm jobs (the fine-tune twice) + {local} local, peak GPU jobs "
               f"queued {watch.peak_queued_gpu} / running {watch.peak_running_gpu}, fine-tune resumed at step "
               f"{record['resumed_at_steps'][0]}, {seconds:.0f} s\n")
    (REPO / "test-artifacts" / "slurm-summary.txt").write_text(summary)
    print(summary)
