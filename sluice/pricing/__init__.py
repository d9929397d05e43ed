"""Public AWS prices as data (`prices.yaml`): one item per billed quantity, each with its source
URL and the date it was recorded. `sluice cost` applies them to measured usage."""

from __future__ import annotations

from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

DEFAULT_PRICES = Path(__file__).with_name("prices.yaml")

REQUIRED_ITEMS = frozenset(
    {
        "lambda_gb_second_arm64",
        "lambda_gb_second_x86_64",
        "lambda_requests",
        "sfn_standard_transitions",
        "sfn_express_requests",
        "sfn_express_gb_second",
        "sqs_standard_requests",
        "eventbridge_custom_events",
        "s3_put_requests",
        "s3_get_requests",
        "s3_storage_gb_month",
        "dynamodb_write_request_units",
        "dynamodb_read_request_units",
        "glue_dpu_hour",
    }
)


class Price(BaseModel):
    """`price` dollars per `per` units of `unit`."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    price: float = Field(ge=0)
    per: int = Field(default=1, ge=1)
    unit: str
    source: str = Field(pattern=r"^https://")
    as_of: str
    note: str | None = None

    @property
    def unit_price(self) -> float:
        """Dollars for one unit."""
        return self.price / self.per


class PriceBook(BaseModel):
    """Every price of one region."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    region: str
    currency: str = "USD"
    items: dict[str, Price]

    def __getitem__(self, name: str) -> Price:
        return self.items[name]


class PriceBookError(ValueError):
    """The price file cannot be read, or lacks an item the cost model needs."""


def load_prices(path: Path | None = None) -> PriceBook:
    """Read a price file (default: the bundled `prices.yaml`).

    Raises PriceBookError when it is not valid YAML, breaks the schema, or lacks an item of
    `REQUIRED_ITEMS`.
    """
    chosen = path or DEFAULT_PRICES
    try:
        raw = yaml.safe_load(chosen.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise PriceBookError(f"cannot read prices {chosen}: {exc}") from None
    try:
        book = PriceBook.model_validate(raw)
    except ValidationError as exc:
        raise PriceBookError(f"prices {chosen} are invalid: {exc}") from None
    missing = sorted(REQUIRED_ITEMS - set(book.items))
    if missing:
        raise PriceBookError(f"prices {chosen} lack {', '.join(missing)}")
    return book
