"""certplane.ca.keys: where CA keys live (`api.KeyStore`) and envelope encryption at rest."""
