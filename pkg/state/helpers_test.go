package state

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func typesUID(s string) types.UID               { return types.UID(s) }
func metav1CreateOptions() metav1.CreateOptions { return metav1.CreateOptions{} }
