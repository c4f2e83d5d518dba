"""Revenue per customer, from order dicts as the services receive them."""

from collections import defaultdict

from schema.orders import Order


def revenue_by_customer(raw_orders, currency="EUR"):
    """Sums each customer's items (before tax) in one currency, in cents.

    Every order is validated against the schema first; an order in another
    currency is an error rather than silently mixed in.
    """
    totals = defaultdict(int)
    for raw in raw_orders:
        order = Order.from_dict(raw).validate()
        if order.currency != currency:
            raise ValueError("order %s is in %s, not %s" % (order.id, order.currency, currency))
        totals[order.customer] += sum(it.quantity * it.unit_cents for it in order.items)
    return dict(sorted(totals.items()))
