"""Whether generated images look like the data: judges (a domain classifier or a user's feature
network), the Frechet distance of their features, and the scores glow-eval reports."""
