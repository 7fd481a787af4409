module seald.example/sealverify

go 1.19
