"""halo checker ``dns``: a DNS query over UDP; success on an answer with RCODE NOERROR."""
