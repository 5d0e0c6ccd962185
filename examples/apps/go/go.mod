module zdd.example/apps

go 1.19
