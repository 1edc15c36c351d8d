"""certplane.ca: X.509 issuance behind one interface (`certplane.ca.api.IssuerBackend`).

Who issues (`local`, later `upstream`) is separate from where the key lives (`keys`). This
package knows X.509, never ACME, and never imports `certplane.server`.
"""
