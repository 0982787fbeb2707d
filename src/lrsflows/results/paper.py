"""The published numbers every table sits beside, as one tidy DataFrame, each row with its source.

The rows are kept as text copied cell for cell from the paper, so checking them against the
source is a side-by-side read rather than a hunt through tuples. Only rows checked against their
publication are `verified`; tables measure our results in σ only against those.
"""

import io

import pandas as pd

ARCH_SUFFIXES = {"coupling": "(C)", "autoregressive": "(A)"}

LRS_PAPER = "LRS paper"
NSF_PAPER = "NSF paper, unverified"
CITATIONS = {
    LRS_PAPER: (
        "Dolatabadi, Erfani & Leckie, Invertible Generative Modeling using Linear Rational Splines, AISTATS 2020: "
        "its tabular table (test log-likelihood) and image table (bits/dim); its Q-NSF (C) and RQ-NSF (C) rows "
        "reprint Durkan et al., Neural Spline Flows, NeurIPS 2019"
    ),
    NSF_PAPER: (
        "Durkan, Bekasov, Murray & Papamakarios, Neural Spline Flows, NeurIPS 2019, tabular table: transcribed from "
        "memory and not yet checked against the paper, so shown apart and never used for σ-distances"
    ),
}
VERIFIED = {LRS_PAPER: True, NSF_PAPER: False}

# "value ± error", or "value" where the paper prints no error bar; an empty arch means the model
# has no coupling/autoregressive variant in the paper (FFJORD, Glow, MAF, ...).
_PUBLISHED = {
    LRS_PAPER: [
        """
        model          | arch     | POWER       | GAS          | HEPMASS       | MINIBOONE     | BSDS300
        FFJORD         |          | 0.46        | 8.59         | -14.92        | -10.43        | 157.40
        Glow           |          | 0.42 ± 0.01 | 12.24 ± 0.03 | -16.99 ± 0.02 | -10.55 ± 0.45 | 156.95 ± 0.28
        Q-NSF          | coupling | 0.64 ± 0.01 | 12.80 ± 0.02 | -15.35 ± 0.02 | -9.35 ± 0.44  | 157.65 ± 0.28
        RQ-NSF         | coupling | 0.64 ± 0.01 | 13.09 ± 0.02 | -14.75 ± 0.03 | -9.67 ± 0.47  | 157.54 ± 0.28
        LRS            | coupling | 0.65 ± 0.01 | 12.99 ± 0.02 | -14.64 ± 0.03 | -9.65 ± 0.48  | 157.70 ± 0.28
        """,
        """
        model          | arch     | CIFAR-10 | ImageNet 64x64
        Real NVP       |          | 3.49     | 3.98
        Glow           |          | 3.35     | 3.81
        Residual Flows |          | 3.28     | 3.75
        RQ-NSF         | coupling | 3.38     | 3.82
        LRS            | coupling | 3.38     | 3.82
        """,
    ],
    # From memory of the Neural Spline Flows paper, not yet checked against it.
    NSF_PAPER: [
        """
        model          | arch           | POWER       | GAS          | HEPMASS       | MINIBOONE     | BSDS300
        MAF            |                | 0.45 ± 0.01 | 12.35 ± 0.02 | -17.03 ± 0.02 | -10.92 ± 0.46 | 156.95 ± 0.28
        Q-NSF          | autoregressive | 0.66 ± 0.01 | 12.91 ± 0.02 | -14.67 ± 0.03 | -9.72 ± 0.47  | 157.42 ± 0.28
        RQ-NSF         | autoregressive | 0.66 ± 0.01 | 13.09 ± 0.02 | -14.01 ± 0.03 | -9.22 ± 0.48  | 157.31 ± 0.28
        """,
    ],
}


def paper_frame() -> pd.DataFrame:
    """One row per published cell: model_label, arch, dataset (title), value, error, source, verified; NaN where none."""
    return pd.concat(
        [_parse(text, source) for source, texts in _PUBLISHED.items() for text in texts], ignore_index=True
    )


def row_labels(model_labels: pd.Series, archs: pd.Series) -> pd.Series:
    """The paper's row names: "LRS (C)", "RQ-NSF (A)"; models without an arch keep their bare name."""
    suffixes = archs.map(ARCH_SUFFIXES)
    return model_labels.where(suffixes.isna(), model_labels + " " + suffixes)


def _parse(text: str, source: str) -> pd.DataFrame:
    wide = pd.read_csv(io.StringIO(text.strip()), sep="|", dtype=str, keep_default_na=False)
    wide = wide.rename(columns=str.strip).apply(lambda column: column.str.strip())
    cells = wide.melt(id_vars=["model", "arch"], var_name="dataset", value_name="cell")
    value_and_error = cells["cell"].str.extract(r"^(?P<value>\S+)(?:\s*±\s*(?P<error>\S+))?$")
    return pd.DataFrame(
        {
            "model_label": cells["model"],
            "arch": cells["arch"].where(cells["arch"] != ""),
            "dataset": cells["dataset"],
            "value": pd.to_numeric(value_and_error["value"]),
            "error": pd.to_numeric(value_and_error["error"]),
            "source": source,
            "verified": VERIFIED[source],
        }
    )
