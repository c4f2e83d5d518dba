import pytest

from analytics.revenue import revenue_by_customer

ORDERS = [
    {"id": "o1", "customer": "ann", "currency": "EUR", "items": [{"sku": "mug", "quantity": 2, "unit_cents": 450}]},
    {"id": "o2", "customer": "bob", "currency": "EUR", "items": [{"sku": "tea", "quantity": 1, "unit_cents": 325}]},
    {"id": "o3", "customer": "ann", "currency": "EUR", "items": [{"sku": "tea", "quantity": 4, "unit_cents": 325}]},
]


def test_revenue_by_customer():
    assert revenue_by_customer(ORDERS) == {"ann": 2200, "bob": 325}


def test_schema_validation_applies():
    bad = dict(ORDERS[0], items=[{"sku": "mug", "quantity": -1, "unit_cents": 450}])
    with pytest.raises(ValueError, match="LineItem.quantity: must not be negative"):
        revenue_by_customer([bad])


def test_currencies_are_not_mixed():
    with pytest.raises(ValueError, match="order o9 is in USD"):
        revenue_by_customer([dict(ORDERS[0], id="o9", currency="USD")])
