module vmsnap.local/testbins/pause

go 1.22
