# gradprune: Zhu & Gupta (2017), "To prune, or not to prune", reproduced end to end.
# `snakemake --cores all` builds every table and figure of the configured preset (config.yaml is
# `mini`; `--configfile presets/paper.yaml` for the paper's scale: a preset given on the command
# line is the whole config, see workflow/rules/common.smk). See README.md.
from snakemake.utils import min_version

min_version("9.0")


# The report's landing page: the verdicts first (snakemake --report report.html).
report: "workflow/report/workflow.rst"


include: "workflow/rules/common.smk"


rule all:
    default_target: True
    input:
        all_targets(),


include: "workflow/rules/data.smk"
include: "workflow/rules/data_lm.smk"
include: "workflow/rules/data_translation.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/footprint.smk"
include: "workflow/rules/report.smk"
