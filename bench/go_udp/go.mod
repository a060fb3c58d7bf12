module udpecho

go 1.19
