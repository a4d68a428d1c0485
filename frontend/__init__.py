"""The frontend tier: the guestbook page and the ClusterIP lesson around it."""
