"""The invoices service: issue invoices for orders, mark them paid, void them."""
