"""Snakemake entry point: sentencepiece BPE + encoded ids of a translation dataset."""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(snakemake.scriptdir).parent / "src"))  # noqa: F821
from gradprune.data.translation import prepare
from gradprune.data.verify import verify_downloads
from gradprune.workflow import logged_to, registry_for

sm = snakemake  # noqa: F821
with logged_to(sm.log[0]):
    verify_downloads(sm.input, registry_for(sm.config))  # before anything reads them
    s = sm.params.settings
    prepare(
        sm.params.raw_root, Path(sm.output.prepared).parent, sm.wildcards.dataset, s["test_sets"],
        s["vocab_size"], model_type=s["spm_model_type"],
        input_sentence_size=s["spm_input_sentence_size"], threads=sm.threads,
        outputs={"spm": sm.output.spm, "prepared": sm.output.prepared, "text": sm.output.text},
    )
