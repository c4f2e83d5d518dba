"""Revenue reports over orders, typed by the generated schema.orders."""
