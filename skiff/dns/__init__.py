"""`skiff dns`: the cluster DNS server, answering for Services and pods from the API."""
