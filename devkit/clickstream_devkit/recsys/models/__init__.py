"""Local recommender algorithms, one module per algorithm; `recipes` maps recipe names onto them."""
