"""The cluster's PKI as plain functions that the API server, the controllers and the CLI share.

- `cluster`: the CA, the API server's serving certificate, client certificates, signing certificate
  requests with the CA (`ensure_cluster_pki`, `issue_client_certificate`, `sign_csr`)
- `csr`: CertificateSigningRequest decoding, conditions and the built-in signers' rules
- `kubeconfig`: kubeconfig documents with embedded credentials
- `tokens`: service-account signing keys and the JWTs issued with them (bound and legacy tokens)
- `files`: atomic, private writes of credential files

Nothing here talks to the API server or to storage; what only the API server does with these (serving,
authenticating, admitting) stays in `apiserver`.
"""
