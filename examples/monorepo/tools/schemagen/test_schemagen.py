import pytest

import schemagen

SCHEMA = """
# a comment
message Item
  sku string
  quantity int

message Cart
  owner string
  items list<Item>
"""


def test_parse():
    assert schemagen.parse(SCHEMA) == [
        ("Item", [("sku", "string"), ("quantity", "int")]),
        ("Cart", [("owner", "string"), ("items", "list<Item>")]),
    ]


def test_unknown_type():
    with pytest.raises(SystemExit, match="Cart.items: unknown type list<Nope>"):
        schemagen.parse("message Cart\n  items list<Nope>\n")


def test_bad_line():
    with pytest.raises(SystemExit, match="line 1"):
        schemagen.parse("  field string\n")


def test_go():
    go = schemagen.gen_go(schemagen.parse(SCHEMA))
    assert 'Items []Item `json:"items"`' in go
    assert "func (m *Cart) Validate() error {" in go


def test_python_round_trip():
    ns = {}
    exec(schemagen.gen_py(schemagen.parse(SCHEMA)), ns)
    cart = ns["Cart"].from_dict({"owner": "ann", "items": [{"sku": "a", "quantity": 2}]})
    assert cart.items[0].quantity == 2
    assert cart.validate() is cart
    with pytest.raises(ValueError, match="Item.quantity: must not be negative"):
        ns["Cart"].from_dict({"owner": "ann", "items": [{"sku": "a", "quantity": -1}]}).validate()
